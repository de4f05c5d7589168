// Batched decoding to text (spec §5.1) through the decoding library.
#include "compacter/train/evaluate.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "compacter/core/error.h"
#include "compacter/nn/autocast.h"

namespace compacter::train {

std::vector<std::vector<GeneratedText>> generate_sequences(
    nn::T5ModelImpl& model, const T5Tokenizer& tokenizer,
    const std::vector<std::vector<int64_t>>& sources, int64_t batch_size,
    const decoding::GenerationConfig& config, bool autocast, const BatchDone& on_batch) {
  check_usage(batch_size >= 1, "the generation batch size must be at least 1, got ", batch_size);
  config.validate("decoding", true);
  check_usage(config.new_token_limit() >= 1, "max_new_tokens must be at least 1, got ",
              config.new_token_limit());
  std::vector<size_t> order(sources.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return sources[a].size() > sources[b].size(); });
  const torch::Device device = model.shared->weight.device();
  std::vector<std::vector<GeneratedText>> out(sources.size());
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(order.size(), start + static_cast<size_t>(batch_size));
    int64_t width = 1;
    for (size_t i = start; i < end; ++i)
      width = std::max<int64_t>(width, static_cast<int64_t>(sources[order[i]].size()));
    const int64_t rows = static_cast<int64_t>(end - start);
    torch::Tensor input = torch::full({rows, width}, tokenizer.pad_id(), torch::kLong);
    torch::Tensor mask = torch::zeros({rows, width}, torch::kLong);
    for (int64_t r = 0; r < rows; ++r) {
      const auto& ids = sources[order[start + static_cast<size_t>(r)]];
      const int64_t n = static_cast<int64_t>(ids.size());
      if (n == 0) continue;
      input[r].narrow(0, 0, n).copy_(torch::tensor(ids, torch::kLong));
      mask[r].narrow(0, 0, n).fill_(1);
    }
    std::vector<std::vector<decoding::Sequence>> generated;
    {
      nn::AutocastScope scope(device, autocast);
      generated = decoding::generate(model, input.to(device), mask.to(device), config);
    }
    for (int64_t r = 0; r < rows; ++r) {
      auto& texts = out[order[start + static_cast<size_t>(r)]];
      for (decoding::Sequence& s : generated[r]) {
        std::string text = tokenizer.decode(s.tokens);
        texts.push_back({std::move(text), std::move(s)});
      }
    }
    if (on_batch) on_batch(end, order.size());
  }
  return out;
}

std::vector<std::string> generate_texts(nn::T5ModelImpl& model, const T5Tokenizer& tokenizer,
                                        const std::vector<std::vector<int64_t>>& sources,
                                        int64_t batch_size,
                                        const decoding::GenerationConfig& config, bool autocast,
                                        const BatchDone& on_batch) {
  std::vector<std::string> out;
  for (auto& texts :
       generate_sequences(model, tokenizer, sources, batch_size, config, autocast, on_batch))
    out.push_back(texts.empty() ? std::string() : std::move(texts.front().text));
  return out;
}

std::vector<std::string> generate_texts(nn::T5ModelImpl& model, const T5Tokenizer& tokenizer,
                                        const std::vector<std::vector<int64_t>>& sources,
                                        int64_t batch_size, int64_t max_new_tokens, bool autocast,
                                        const BatchDone& on_batch) {
  check_usage(max_new_tokens >= 1, "max_new_tokens must be at least 1, got ", max_new_tokens);
  decoding::GenerationConfig config = decoding::from_model_config(model.config());
  config.max_new_tokens = max_new_tokens;
  return generate_texts(model, tokenizer, sources, batch_size, config, autocast, on_batch);
}

}  // namespace compacter::train

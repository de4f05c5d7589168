// Batched decoding to text (spec §5.1) through the decoding library.
#include "compacter/train/evaluate.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "compacter/core/error.h"
#include "compacter/nn/autocast.h"

namespace compacter::train {

namespace {

// Sources in batches of at most batch_size, longest first (little padding): fn(input, mask,
// positions) with right-padded [rows, width] ids and mask on `device`, and each row's source
// index; then on_batch.
template <class Fn>
void for_each_batch(const std::vector<std::vector<int64_t>>& sources, int64_t batch_size,
                    int64_t pad, torch::Device device, const BatchDone& on_batch, Fn&& fn) {
  check_usage(batch_size >= 1, "the generation batch size must be at least 1, got ", batch_size);
  std::vector<size_t> order(sources.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return sources[a].size() > sources[b].size(); });
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(order.size(), start + static_cast<size_t>(batch_size));
    int64_t width = 1;
    for (size_t i = start; i < end; ++i)
      width = std::max<int64_t>(width, static_cast<int64_t>(sources[order[i]].size()));
    const int64_t rows = static_cast<int64_t>(end - start);
    torch::Tensor input = torch::full({rows, width}, pad, torch::kLong);
    torch::Tensor mask = torch::zeros({rows, width}, torch::kLong);
    std::vector<size_t> positions;
    for (int64_t r = 0; r < rows; ++r) {
      positions.push_back(order[start + static_cast<size_t>(r)]);
      const auto& ids = sources[positions.back()];
      const int64_t n = static_cast<int64_t>(ids.size());
      if (n == 0) continue;
      input[r].narrow(0, 0, n).copy_(torch::tensor(ids, torch::kLong));
      mask[r].narrow(0, 0, n).fill_(1);
    }
    fn(input.to(device), mask.to(device), positions);
    if (on_batch) on_batch(end, order.size());
  }
}

}  // namespace

std::vector<std::vector<GeneratedText>> generate_sequences(
    nn::T5ModelImpl& model, const T5Tokenizer& tokenizer,
    const std::vector<std::vector<int64_t>>& sources, int64_t batch_size,
    const decoding::GenerationConfig& config, bool autocast, const BatchDone& on_batch,
    const BatchStart& on_batch_start, const StepDone& on_step) {
  config.validate("decoding", true);
  check_usage(config.new_token_limit() >= 1, "max_new_tokens must be at least 1, got ",
              config.new_token_limit());
  const torch::Device device = model.shared->weight.device();
  std::vector<std::vector<GeneratedText>> out(sources.size());
  for_each_batch(sources, batch_size, tokenizer.pad_id(), device, on_batch,
                 [&](const torch::Tensor& input, const torch::Tensor& mask,
                     const std::vector<size_t>& positions) {
                   std::vector<std::vector<decoding::Sequence>> generated;
                   if (on_batch_start) on_batch_start(positions);
                   decoding::DecodeOptions options;
                   if (on_step) options.on_step = [&](int64_t, const torch::Tensor&) { on_step(); };
                   {
                     nn::AutocastScope scope(device, autocast);
                     generated = decoding::generate(model, input, mask, config, options);
                   }
                   for (size_t r = 0; r < positions.size(); ++r)
                     for (decoding::Sequence& s : generated[r]) {
                       std::string text = tokenizer.decode(s.tokens);
                       out[positions[r]].push_back({std::move(text), std::move(s)});
                     }
                 });
  return out;
}

std::vector<decoding::LabelDistribution> classify_sources(
    nn::T5ModelImpl& model, const T5Tokenizer& tokenizer,
    const std::vector<std::vector<int64_t>>& sources, int64_t batch_size,
    const std::vector<std::string>& labels, bool autocast, const BatchDone& on_batch) {
  check_usage(!labels.empty(), "constrained decoding needs at least one label");
  std::vector<std::vector<int64_t>> label_ids;
  for (const std::string& label : labels) {
    std::vector<int64_t> ids = tokenizer.encode(label);
    if (!ids.empty() && ids.back() == tokenizer.eos_id()) ids.pop_back();
    label_ids.push_back(std::move(ids));
  }
  const torch::Device device = model.shared->weight.device();
  const T5Config& c = model.config();
  std::vector<decoding::LabelDistribution> out(sources.size());
  for_each_batch(sources, batch_size, tokenizer.pad_id(), device, on_batch,
                 [&](const torch::Tensor& input, const torch::Tensor& mask,
                     const std::vector<size_t>& positions) {
                   nn::AutocastScope scope(device, autocast);
                   auto d = decoding::score_labels(model, input, mask, label_ids, c.eos_token_id,
                                                   c.decoder_start_token_id);
                   for (size_t r = 0; r < positions.size(); ++r)
                     out[positions[r]] = std::move(d[r]);
                 });
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

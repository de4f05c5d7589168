// Batched greedy decoding to text (spec §5.1).
#include "compacter/train/evaluate.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "compacter/core/error.h"
#include "compacter/train/generate.h"

namespace compacter::train {

std::vector<std::string> generate_texts(nn::T5ModelImpl& model, const T5Tokenizer& tokenizer,
                                        const std::vector<std::vector<int64_t>>& sources,
                                        int64_t batch_size, int64_t max_length) {
  check(batch_size >= 1, "eval batch size must be positive");
  check(max_length >= 2, "generation max length must be at least 2 (start token + one)");
  std::vector<size_t> order(sources.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return sources[a].size() > sources[b].size(); });
  const torch::Device device = model.shared->weight.device();
  GenerateOptions go;
  go.max_new_tokens = max_length - 1;
  std::vector<std::string> out(sources.size());
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
    torch::Tensor gen =
        greedy_generate(model, input.to(device), mask.to(device), go).to(torch::kCPU).contiguous();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t* p = gen[r].data_ptr<int64_t>();
      out[order[start + static_cast<size_t>(r)]] =
          tokenizer.decode(std::vector<int64_t>(p, p + gen.size(1)));
    }
  }
  return out;
}

}  // namespace compacter::train

// The base-model weights fingerprint: see fingerprint.h.
#include "compacter/nn/fingerprint.h"

#include <torch/torch.h>

#include "compacter/core/error.h"
#include "compacter/core/fingerprint.h"
#include "compacter/io/hf_names.h"

namespace compacter::nn {

namespace {

constexpr int64_t kSamples = 64;
constexpr int64_t kVocabularyRows = 256;

bool is_vocabulary_tensor(const std::string& name) {
  return name == "shared.weight" || name == "lm_head.weight";
}

}  // namespace

std::string weights_fingerprint(T5ModelImpl& model) {
  torch::NoGradGuard no_grad;
  auto params = model.named_parameters(/*recurse=*/true);
  Fnv1a64 h;
  for (const HfTensorSpec& spec : hf_t5_tensors(model.config())) {
    const torch::Tensor* p = params.find(spec.name);
    check(p != nullptr, "weights fingerprint: the model has no tensor ", spec.name);
    torch::Tensor t = p->detach();
    h.add(spec.name);
    const bool vocabulary = is_vocabulary_tensor(spec.name);
    for (int64_t d = vocabulary ? 1 : 0; d < t.dim(); ++d) h.add_int(t.size(d));
    if (vocabulary) t = t.narrow(0, 0, std::min<int64_t>(t.size(0), kVocabularyRows));
    const torch::Tensor flat = t.reshape(-1);
    const int64_t n = flat.numel();
    if (n == 0) continue;
    const torch::Tensor index =
        torch::arange(kSamples, torch::kLong).mul(n).div(kSamples, "floor").to(flat.device());
    const torch::Tensor values = flat.index_select(0, index)
                                     .to(torch::kCPU)
                                     .to(torch::kFloat32)
                                     .to(torch::kBFloat16)
                                     .contiguous();
    h.add(values.data_ptr(), static_cast<size_t>(values.numel() * values.element_size()));
  }
  return h.hex();
}

}  // namespace compacter::nn

// Teacher-forced label scoring and the normalised label distribution (see the header).
#include "compacter/train/decoding/label_scores.h"

#include <torch/torch.h>

#include <cmath>

#include "compacter/core/error.h"
#include "compacter/train/decoding/decoder_state.h"

namespace compacter::decoding {

std::vector<LabelDistribution> score_labels(nn::T5ModelImpl& model, const torch::Tensor& input_ids,
                                            const torch::Tensor& attention_mask,
                                            const std::vector<std::vector<int64_t>>& labels,
                                            int64_t eos, int64_t start) {
  check_usage(!labels.empty(), "constrained decoding needs at least one label");
  check(input_ids.dim() == 2, "input_ids must be [batch, length]");
  const int64_t vocab = model.config().vocab_size;
  for (const auto& label : labels)
    for (int64_t id : label)
      check_usage(id >= 0 && id < vocab, "a label's token id ", id,
                  " is beyond the model's vocabulary (", vocab, " rows)");
  InferenceMode mode(model);
  const int64_t B = input_ids.size(0);
  if (model.before_forward) model.before_forward();
  auto [enc, enc_mask] = model.encoder->encode(input_ids, attention_mask);
  const torch::Device device = enc.device();
  std::vector<LabelDistribution> out(static_cast<size_t>(B));
  for (const auto& label : labels) {
    std::vector<int64_t> target = label;
    target.push_back(eos);
    std::vector<int64_t> decoder_input{start};
    decoder_input.insert(decoder_input.end(), label.begin(), label.end());
    const int64_t T = static_cast<int64_t>(target.size());
    torch::Tensor dec = torch::tensor(decoder_input, torch::kLong).to(device).expand({B, T});
    torch::Tensor h = model.decoder->decode(dec, enc, enc_mask, nullptr);
    torch::Tensor lp = torch::log_softmax(model.lm_head->forward(h).to(torch::kFloat32), -1);
    torch::Tensor index = torch::tensor(target, torch::kLong).to(device).expand({B, T});
    torch::Tensor sum = lp.gather(2, index.unsqueeze(2)).squeeze(2).to(torch::kDouble).sum(1);
    sum = sum.to(torch::kCPU).contiguous();
    for (int64_t b = 0; b < B; ++b) out[b].logprobs.push_back(sum.data_ptr<double>()[b]);
  }
  for (LabelDistribution& d : out) {
    double top = -INFINITY;
    for (size_t i = 0; i < d.logprobs.size(); ++i)
      if (d.logprobs[i] > top) {
        top = d.logprobs[i];
        d.best = static_cast<int64_t>(i);
      }
    double z = 0.0;
    for (double lp : d.logprobs) z += std::exp(lp - top);
    for (double lp : d.logprobs) d.probabilities.push_back(std::exp(lp - top) / z);
  }
  return out;
}

}  // namespace compacter::decoding

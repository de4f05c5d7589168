// AdamW as Hugging Face transformers 4.6's `AdamW` computes it (spec §6.1): decoupled weight
// decay applied after the update, bias correction folded into the step size:
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps);  p -= lr * wd * p
// (torch.optim.AdamW puts eps inside the bias-corrected denominator instead.)
// Each step updates all tensors together through libtorch's multi-tensor (_foreach_) operators:
// on CUDA a handful of fused kernels instead of eight per tensor, which a step of a small
// method, bound by kernel launches, otherwise spends much of its time on.
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace compacter::train {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

class AdamW {
 public:
  // Only these tensors are updated (the method's trainable set, each once).
  AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWOptions options);
  void step(double lr);  // tensors without a gradient are left alone
  void zero_grad();
  int64_t steps() const { return steps_; }
  const std::vector<std::pair<std::string, torch::Tensor>>& params() const { return params_; }

  // State for checkpoints: "exp_avg.<name>", "exp_avg_sq.<name>" (created lazily).
  std::vector<std::pair<std::string, torch::Tensor>> state() const;
  void load_state(const std::vector<std::pair<std::string, torch::Tensor>>& state, int64_t steps);

 private:
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  AdamWOptions options_;
  int64_t steps_ = 0;
};

// torch.nn.utils.clip_grad_norm_ (L2): scales the gradients of `params` by
// min(1, max_norm / (norm + 1e-6)), norm being their joint L2 norm, which it returns (a 0-d
// tensor on their device: reading it is the caller's choice, so no device synchronisation here).
// Tensors without a gradient are skipped; with none, returns an undefined tensor.
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

// Hugging Face's get_linear_schedule_with_warmup: the learning rate of optimizer step `step`
// (0-based): peak * step / warmup during warmup, then a linear decay to 0 at `total`.
double linear_schedule(int64_t step, int64_t warmup, int64_t total, double peak);

}  // namespace compacter::train

// bf16 autocast (mixed precision) for a scope: while an AutocastScope is alive, libtorch runs the
// matrix products of the forward pass in bf16 and keeps reductions, softmax and the loss in fp32;
// weights, gradients and optimizer state stay fp32. This is Hugging Face Trainer's `--bf16`
// (torch.autocast(device_type, dtype=torch.bfloat16)); the backward pass needs no scope.
#pragma once
#include <torch/torch.h>

namespace compacter::nn {

class AutocastScope {
 public:
  // enabled = false makes the scope a no-op (the caller's flag decides).
  AutocastScope(torch::Device device, bool enabled);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_ = false;
  bool cuda_ = false;
  bool previous_enabled_ = false;
  torch::ScalarType previous_dtype_ = torch::kFloat32;
};

}  // namespace compacter::nn

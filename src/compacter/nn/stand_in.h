// The empty tensor that stands for "none" among the inputs of this library's autograd functions
// (torch::autograd::Function takes defined tensors only): no bias, no W^T (nn/linear_kernel.cpp),
// no layout (nn/batched_matmul.cpp). Those functions test numel() == 0 and never read or write it,
// so one made once serves every call; it is never freed, so no thread meets it destroyed at exit.
#pragma once
#include <torch/torch.h>

namespace compacter::nn {

inline const torch::Tensor& absent_input() {
  static const torch::Tensor& none = *new torch::Tensor(torch::empty({0}, torch::kFloat32));
  return none;
}

}  // namespace compacter::nn

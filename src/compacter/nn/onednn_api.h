// What the library's two oneDNN paths (fp32 linear layers and attention products:
// nn/linear_kernel.h; bf16 autocast: nn/bf16_linear.h) share: oneDNN's C API found in the process,
// the operand checks both make before calling it, and the output sizes of a product over x's
// leading dimensions.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace compacter::nn {

// A symbol of oneDNN's C API (dnnl.h, oneDNN 2.x): from the process when libtorch_cpu links libdnnl
// (Debian), else from libdnnl.so.2 opened by name; null when neither has it.
void* onednn_symbol(const char* name);

// The conditions of y = x W^T + b that both oneDNN paths need, whatever the dtypes (each path
// checks its own): x [..., K] and W [N, K] strided CPU tensors, neither empty nor a conjugate or
// negative view; b undefined or a strided CPU vector [N].
bool linear_operands_fit(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b);

// x's sizes with the last one replaced by `last`: the product's sizes over x's leading dimensions.
std::vector<int64_t> sizes_with_last(const torch::Tensor& x, int64_t last);

}  // namespace compacter::nn

// T5's layer norm, y = x / sqrt(mean(x^2) + eps) * g (HF T5LayerNorm: no mean subtraction, no
// bias, the variance in fp32), as one fused CPU kernel for fp32 (issue 16: the non-GEMM time of a
// training step). The unfused operators made seven passes over x forward and about twenty
// backward, and kept x * r, an activation the size of x, for the backward; this kernel reads x
// once (twice per row, from cache) forward and keeps only r = 1 / sqrt(mean(x^2) + eps), one
// float per row, beside x, which the residual stream holds anyway. Backward, with dh = dy * g:
//   dx = r dh - x r^3 / n * sum_j(dh_j x_j),   dg = sum over rows of dy * x * r.
#pragma once
#include <torch/torch.h>

namespace compacter::nn {

// Whether rms_norm(x, weight, eps) runs the fused kernel: x and weight fp32 on the CPU, weight of
// x's last size. Elsewhere (fp64 for finite differences, bf16 weights, CUDA) it runs the
// composite operators.
bool rms_norm_fused_applies(const torch::Tensor& x, const torch::Tensor& weight);

// x / sqrt(mean(x^2, last dim) + eps) * weight, the variance in at least fp32; with a bf16 or fp16
// weight the normalised x is cast to the weight's dtype before the scale (as HF does).
// Differentiable in x and weight. The fused kernel where it applies, else rms_norm_composite.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// The same with libtorch's operators (finite-difference tests in fp64, bf16, CUDA; the
// benchmark's baseline).
torch::Tensor rms_norm_composite(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// The normalisation alone, for a weight the caller applies (per-row weights, nn/rows.h):
// rms_norm(x, ones of weight_dtype, eps), so that the caller's product gives the bits
// rms_norm(x, weight, eps) would.
torch::Tensor rms_normalise(const torch::Tensor& x, double eps, torch::ScalarType weight_dtype);

}  // namespace compacter::nn

// The fp32 linear layers' product, y = x W^T + b (HF's nn.Linear; T5's projections, feed-forward
// and output layer), on either of the two CPU kernels libtorch brings (issue 16, point 1: "fp32
// and bf16 linear layers through oneDNN instead of OpenBLAS; use whichever is fastest and
// correct, per dtype"):
//   - kBlas: torch::linear, i.e. the BLAS libtorch links (OpenBLAS here) through addmm / mm;
//   - kOnednn: oneDNN's dnnl_sgemm (libdnnl, which libtorch_cpu links), called directly on the
//     row-major operands, with its own autograd function (dX = G W, dW = G^T X, db = sum G).
// The choice is process-wide (the launcher measures both and says which, kernels/choice.h);
// kBlas by default. Under bf16 autocast on the CPU, linear() is nn::bf16_linear (oneDNN's bf16
// GEMM, nn/bf16_linear.h), and for a bf16 model's few rows at inference nn::bf16_model_linear (the
// same GEMM), unless COMPACTER_BF16_LINEAR says libtorch. Anything neither path covers
// (CUDA, other dtypes, empty or conjugate operands, no libdnnl in the process) is torch::linear
// whatever the choice.
#pragma once
#include <torch/torch.h>

#include <mutex>
#include <string>

#include "compacter/nn/tensor_source.h"

namespace compacter::nn {

enum class Fp32LinearKernel { kBlas, kOnednn };

// The process-wide choice (not thread-safe against concurrent products: set it at start-up).
void set_fp32_linear_kernel(Fp32LinearKernel kernel);
Fp32LinearKernel fp32_linear_kernel();
// "OpenBLAS" (the BLAS libtorch links) or "oneDNN".
std::string fp32_linear_kernel_name(Fp32LinearKernel kernel);

// Whether dnnl_sgemm can be called in this process (looked up once).
bool onednn_sgemm_available();

// Copies of a frozen weight W [N, K], kept by its layer between training steps (made on first
// use, made again when W is another tensor or was written in place: its version counter):
//   - transposed(W): W^T [K, N] fp32, for oneDNN's fp32 forward product: x W^T as sgemm('N', 'N')
//     on W^T runs at 1.2-1.3x the rate of sgemm('N', 'T') on W for T5's attention and output
//     projections on the machines measured (bench/results/frozen-transposed-*), and the
//     backward's dX = G W reads W as it is; costs one copy of each frozen weight (t5-small:
//     168 MB);
//   - bf16(W): W rounded to bf16 [N, K], for bf16 autocast (nn/bf16_linear.h), which would
//     otherwise round every frozen weight again on every forward pass (libtorch's autocast keeps
//     its casts only of weights that require gradients, and only within one autocast region);
//     the same bits as that cast; half a copy of each frozen weight.
// Used only where gradients flow (training): inference keeps one copy of the weights.
class FrozenWeight {
 public:
  // W^T for `w` (2-D fp32 CPU), made or reused.
  torch::Tensor transposed(const torch::Tensor& w);
  // `w` (2-D fp32 CPU) as bf16, made or reused.
  torch::Tensor bf16(const torch::Tensor& w);
  bool holds() const;
  void clear();

 private:
  // Drops the copies unless they were made from `w` as it is now; records `w` as their source.
  void refresh(const torch::Tensor& w);
  mutable std::mutex mutex_;
  TensorSource source_;  // the weight the copies were made from, as it was then
  torch::Tensor wt_, wb_;
};

// y = x W^T + b (b may be undefined), x [..., K], W [N, K]: through the process-wide choice.
// With `frozen`, the layer's copies of W, used where gradients flow and W needs none. Under bf16
// autocast on the CPU this is nn::bf16_linear where it applies (nn/bf16_linear.h), whatever the
// fp32 choice; for bf16 operands on few rows without gradients, nn::bf16_model_linear.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     FrozenWeight* frozen = nullptr);
// The same through oneDNN whatever the choice, where the path applies (else torch::linear).
torch::Tensor onednn_linear(const torch::Tensor& x, const torch::Tensor& weight,
                            const torch::Tensor& bias, FrozenWeight* frozen = nullptr);
// Whether onednn_linear(x, weight, bias) takes the oneDNN path (for tests).
bool onednn_linear_applies(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& bias);

// Row-major C[m, n] = op(A) op(B) through dnnl_sgemm, op 'N' or 'T' (A is m x k after op, with
// leading dimension lda; likewise B, k x n). Throws when oneDNN is absent or reports a failure.
void onednn_sgemm(char transa, char transb, int64_t m, int64_t n, int64_t k, const float* a,
                  int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc);

}  // namespace compacter::nn

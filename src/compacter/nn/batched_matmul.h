// The attention's batched matrix products, C[i] = A[i] B[i] for every batch index i (T5's
// scores Q K^T and its weighted values P V; HF modeling_t5.T5Attention uses torch.matmul), with
// autograd. On the CPU each matrix goes straight to a gemm through its strides, one matrix per
// thread: the heads' views ([B, H, T, d] over [B, T, H * d] projections, and K's transpose) need
// no copies, and no per-matrix operator dispatch happens. libtorch 1.13 without MKL instead copies
// the views to contiguous tensors and runs one multi-threaded addmm per matrix
// (`bench/profile_summary.py`: a t5-small training step spent ~45% of its operator time in bmm,
// its per-matrix select / resolve_conj and those copies). The gemm: in fp32 oneDNN's sgemm where
// the linear layers run on oneDNN (nn/linear_kernel.h), else the BLAS's, as in fp64; in bf16 and
// under bf16 autocast (the operands rounded to bf16 first, as autocast rounds torch::matmul's)
// oneDNN's bf16 GEMM unless COMPACTER_BF16_LINEAR says libtorch (nn/bf16_linear.h; a bf16 model's
// products too, without autocast), the fp32 products
// rounded to bf16 once. Anything else (CUDA, broadcast batch dimensions, no gemm found) is
// torch::matmul.
#pragma once
#include <torch/torch.h>

namespace compacter::nn {

// a [..., M, K] times b [..., K, N] with the same batch dimensions: [..., M, N]. On the BLAS path,
// when `layout` is given, has the product's sizes and is dense with row-major (or column-major)
// matrices, the product has its strides (e.g. the heads' view of a [B, T, H * d] tensor, so that
// out.transpose(1, 2).reshape(B, T, H * d) is a view, not a copy); else it is contiguous. The
// gradients of a and b are laid out as a and b where they can be.
torch::Tensor batched_matmul(const torch::Tensor& a, const torch::Tensor& b,
                             const torch::Tensor& layout = {});

// Whether batched_matmul(a, b) takes the strided path (for tests).
bool batched_matmul_uses_blas(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace compacter::nn

// Linear layers under bf16 autocast on the CPU, y = x W^T + b with x and W rounded to bf16,
// through oneDNN's bf16 products (libdnnl, which libtorch_cpu links: its GEMM API,
// dnnl_gemm_bf16bf16f32, bf16 operands, fp32 accumulation and output; from kBf16MatmulRowsFrom
// rows its matmul primitive, nn/onednn_matmul.h, which also writes bf16), with its own autograd
// function. What libtorch's autocast
// does for torch::linear (round x and W to bf16, multiply, return bf16), in fewer passes:
//   - a frozen weight is rounded once and kept (nn::FrozenWeight::bf16), not on every forward;
//   - the product is rounded to bf16 once, from the fp32 accumulator (the bias, if any, added in
//     fp32 first; autocast rounds the bias to bf16 and adds it in the product);
//   - backward: dX = G W and dW = G^T x come out of the GEMM in fp32 and are returned as x's and
//     W's dtypes, without autocast's round trip (a bf16 product, then a cast back to fp32): an
//     fp32 x gets its gradient unrounded from the fp32 sums (autocast rounds it to bf16 once);
//     db = sum over rows of G, in fp32.
// Measured on the 2-core Zen 5 VM: the GEMM alone runs at 1.05-1.1x libtorch's bf16 product on
// T5's 2,048-row shapes and ~1.6x on the decoder's 48 rows; the rounding of its fp32 product to
// bf16 costs about what it gains on the large shapes (bench's onednn_bf16_gflops, which includes
// it, was 0.96x libtorch's on 2048 x 512 x 2048). A t5-small Compacter++ step under autocast,
// interleaved A/B: 0.471-0.478 -> 0.412-0.433 s (bench/results/bf16-linear-vm-20261206).
// Anything else (no autocast, fp16 autocast, CUDA, fp64, conjugate operands, no libdnnl) is
// torch::linear, whose autocast does the rest.
#pragma once
#include <torch/torch.h>

#include "compacter/nn/linear_kernel.h"

namespace compacter::nn {

// Which product the linear layers use under bf16 autocast on the CPU: kOnednn (the default where
// dnnl_gemm_bf16bf16f32 is in the process) or kLibtorch (torch::linear under autocast).
enum class Bf16LinearKernel { kLibtorch, kOnednn };
void set_bf16_linear_kernel(Bf16LinearKernel kernel);
Bf16LinearKernel bf16_linear_kernel();
std::string bf16_linear_kernel_name(Bf16LinearKernel kernel);  // "libtorch" or "oneDNN"

// From how many rows the oneDNN path's forward product and x's gradient go through oneDNN's matmul
// primitive (nn/onednn_matmul.h: brgemm kernels on AMX tiles) instead of the GEMM API, on CPUs
// where oneDNN uses AMX; the primitive writes the bf16 result itself (the bias added in fp32
// first) where the GEMM API's fp32 result was rounded in a second pass. W's gradient, few rows,
// the attention's products (one matrix per thread) and CPUs without AMX keep the GEMM API.
// Measured on a 2-core Xeon with AMX (family 6, model 207; 2026-12-07), bench/bench_bf16_products
// (autocast-bf16 steps of a frozen t5-small backbone, batch 16, source 128, target 3, the paths
// alternating step by step in one process): 0.631 -> 0.490 s and 0.494 -> 0.403 s in medians
// (12 and 16 pairs, the primitive faster in 11 and 16), libtorch's own product 0.525 and 0.441 s.
// With oneDNN's AMX kernels switched off (ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16) the primitive was
// no faster (1.98 against 1.92 s, 2 of 6 pairs), hence AMX only. A bf16 model's few rows, cold
// weights: 8 to 15 rows 1.03-1.27x faster through the primitive; at 1 row the GEMM API is 3x
// faster (1 x 512 x 2048, hot: 127 against 40 GFLOP/s).
constexpr int64_t kBf16MatmulRowsFrom = 8;
// The primitive on (the default) or off (the GEMM API only; for comparisons and tests).
void set_bf16_matmul_primitive(bool on);
// Whether products of kBf16MatmulRowsFrom rows and more take the primitive in this process (on,
// oneDNN on AMX, the primitive in the process).
bool bf16_matmul_primitive_used();
// Which oneDNN products the path takes, for the kernels' report: "matmul primitive (AMX) from 8
// rows (forward, x's gradient), GEMM API otherwise", "GEMM API (no AMX)" or "GEMM API".
std::string bf16_onednn_products();

// Whether onednn_gemm_bf16 can be called in this process: dnnl_gemm_bf16bf16f32 runs (looked up
// once), or else dnnl_sgemm does, which it then widens to.
bool onednn_bf16_gemm_available();

// On a CPU without bf16 instructions (AVX2 only, e.g. AMD Zen 2-4, Intel before Cooper Lake)
// oneDNN 2.x has no bf16 GEMM (dnnl_gemm_bf16bf16f32 returns dnnl_unimplemented), and libtorch's
// bf16 product falls back to a scalar loop on one thread: on a 2-core AMD EPYC (Zen 3, family 25
// model 1) torch::mm in bf16 ran at 4.2-4.6 GFLOP/s against 120-129 for fp32, and a t5-small
// Compacter++ autocast-bf16 step took 100.6 s against 2.2 s in fp32 (2026-12-07). There
// onednn_gemm_bf16 widens A and B to fp32 and calls dnnl_sgemm: the same values (bf16 is fp32's
// upper half), each product of two bf16 values exact in fp32 and summed in fp32, as the bf16 GEMM
// sums; only the order of the sums may differ. Forced (tests, benchmarks) with
// set_bf16_gemm_widening(true) where the bf16 GEMM runs.
void set_bf16_gemm_widening(bool forced);
// Whether onednn_gemm_bf16 widens to fp32 in this process (no bf16 GEMM, or forced).
bool bf16_gemm_widens();

// Row-major C[m, n] (fp32) = op(A) op(B) with bf16 A and B through dnnl_gemm_bf16bf16f32, or
// dnnl_sgemm on the widened operands (bf16_gemm_widens), op 'N' or 'T' as in onednn_sgemm. Throws
// when oneDNN is absent or reports a failure.
void onednn_gemm_bf16(char transa, char transb, int64_t m, int64_t n, int64_t k,
                      const c10::BFloat16* a, int64_t lda, const c10::BFloat16* b, int64_t ldb,
                      float* c, int64_t ldc);

// Whether bf16_linear(x, weight, bias) takes oneDNN's path: CPU bf16 autocast on, x and W fp32 or
// bf16, the GEMM in the process (whatever the process-wide choice).
bool bf16_linear_applies(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias);

// y = x W^T + b as bf16 (b may be undefined), x [..., K], W [N, K]; torch::linear where the path
// does not apply. With `frozen`, the layer's copies of W: its bf16 copy is used where gradients
// flow and W needs none.
torch::Tensor bf16_linear(const torch::Tensor& x, const torch::Tensor& weight,
                          const torch::Tensor& bias, FrozenWeight* frozen = nullptr);

// A bf16 model's linear layers (x, W and b bf16, no autocast) at inference on fewer than
// kBf16ModelRowsBelow rows (decoding: one row per sequence and beam), through oneDNN's bf16 GEMM:
// libtorch's bf16 product costs ~35 us per call more and reads a weight at half the rate there.
// Measured with cold weights on the 2-core Zen 5 VM, libtorch's product against this one (the
// fp32 product of the GEMM rounded to bf16, as libtorch's is): t5-small's vocabulary (32128 x
// 512) at 1 row 2.02 against 0.80 ms, at 8 rows 2.55 against 2.19; 2048 x 512 at 1 row 137
// against 58 us; at 32 rows the two are even overall (512 x 2048: 201 against 314 us), so from 16
// rows libtorch's product stays. Elsewhere (gradients, autocast, fp32, COMPACTER_BF16_LINEAR=
// libtorch, no GEMM) the product is torch::linear. Where the GEMM widens to fp32 (no bf16
// instructions, see bf16_gemm_widens) every row count takes it: libtorch's bf16 product has no
// fast kernel there either.
constexpr int64_t kBf16ModelRowsBelow = 16;
bool bf16_model_linear_applies(const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias);
torch::Tensor bf16_model_linear(const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias);

}  // namespace compacter::nn

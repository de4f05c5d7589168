// oneDNN's matmul primitive for bf16 products with an fp32 result, through oneDNN's C API (dnnl.h,
// oneDNN 2.x) found in the process (nn/onednn_api.h). The primitive runs oneDNN's brgemm kernels,
// which use the CPU's AMX tiles where it has them (Sapphire Rapids and later: "brg:avx512_core_
// amx_bf16" in oneDNN's verbose output); dnnl_gemm_bf16bf16f32 (nn/bf16_linear.h) is the GEMM API,
// whose kernels are AVX-512 ones for most shapes. On a 2-core Xeon with AMX (family 6, model 207;
// 2026-12-07), hot operands, the forward product of a T5 layer x W^T ran 1.3-1.4x faster through
// the primitive on 2,048 rows (2048 x 512 x 2048: 1,240 against 920-960 GFLOP/s; 2048 x 512 x
// 512: 1,460 against 1,030-1,050) and up to 1.6x on 48 rows; W's gradient G^T x ran faster on
// the GEMM API (1,360 against 1,090-1,150 on 2048 x 512 x 2048).
//
// A primitive is made once per shape, layout and thread (oneDNN's own primitive cache makes it
// cheap, but its descriptor costs 3-30 us per call) and kept in a small per-thread table.
#pragma once
#include <c10/util/BFloat16.h>

#include <cstdint>

namespace compacter::nn {

// What the matmul primitive can do for bf16 products in this process, found once: its C API is
// absent (no oneDNN 2.x), oneDNN has no bf16 kernel for this CPU (oneDNN 2.x needs AVX-512: on
// an AVX2-only AMD EPYC it makes no primitive descriptor), or one 2 x 2 x 2 product checked gave
// the wrong or the right sums.
enum class MatmulSupport { kAbsent, kNoKernel, kWrong, kComputes };
MatmulSupport onednn_matmul_bf16_support();
// Whether the primitive computes bf16 products here (kComputes).
bool onednn_matmul_bf16_available();

// Whether oneDNN dispatches to AMX in this process: dnnl_get_effective_cpu_isa() includes
// avx512_core_amx (the CPU has the tiles, the operating system lets the process use them, and
// ONEDNN_MAX_CPU_ISA does not cap it). False where oneDNN is absent.
bool onednn_uses_amx();

// Row-major C[m, n] = op(A) op(B) (+ bias, a length-n fp32 row added to every row when not null)
// with bf16 A and B through the matmul primitive, op 'N' or 'T' as in onednn_gemm_bf16
// (nn/bf16_linear.h). The products are summed in fp32, the bias added in fp32, and the sum written
// as fp32 or rounded to bf16 once (round to nearest even), by C's type. Throws when oneDNN is
// absent or fails. Call it outside a parallel region: oneDNN parallelises the product itself.
void onednn_matmul_bf16(char transa, char transb, int64_t m, int64_t n, int64_t k,
                        const c10::BFloat16* a, int64_t lda, const c10::BFloat16* b, int64_t ldb,
                        float* c, int64_t ldc, const float* bias = nullptr);
void onednn_matmul_bf16(char transa, char transb, int64_t m, int64_t n, int64_t k,
                        const c10::BFloat16* a, int64_t lda, const c10::BFloat16* b, int64_t ldb,
                        c10::BFloat16* c, int64_t ldc, const float* bias = nullptr);

// Primitives kept per thread before the table is emptied (decoding meets a new row count as
// sequences finish).
constexpr int kKeptMatmulPrimitives = 64;

}  // namespace compacter::nn

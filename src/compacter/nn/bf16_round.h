// bf16 to fp32 and back. Widening is exact: a bf16 value's bits are the upper half of its fp32's.
// Rounding fp32 to bf16 goes to the nearest bf16 with ties to even, exactly as c10::BFloat16's
// constructor (c10/util/BFloat16.h, round_to_nearest_even) rounds: add 0x7FFF plus the lowest
// kept bit to the fp32 bits and keep the upper 16; a NaN becomes the quiet NaN 0x7FC0. Written
// with bit operations only, so that GCC vectorises the loops that call it, and always inlined, so
// that each CPU clone of a caller (nn/cpu_clones.h) gets its own vector code. The bf16 attention
// products (nn/batched_matmul.cpp) round each matrix with it while the matrix is still in cache;
// the hash dropout's bf16 loop (nn/dropout.cpp) widens its inputs and rounds its products; the
// widened bf16 GEMM (nn/bf16_linear.cpp) widens its operands.
#pragma once
#include <c10/util/BFloat16.h>

#include <cstdint>
#include <cstring>

namespace compacter::nn {

// One value's bf16 bits.
[[gnu::always_inline]] inline uint16_t bf16_bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return v != v ? uint16_t{0x7FC0} : static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// n values of x rounded into y.
[[gnu::always_inline]] inline void round_fp32_to_bf16(const float* x, c10::BFloat16* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t bits = bf16_bits(x[i]);
    std::memcpy(y + i, &bits, sizeof bits);
  }
}

// The fp32 value of bf16 bits: exact.
[[gnu::always_inline]] inline float bf16_value(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// n values of x widened into y.
[[gnu::always_inline]] inline void widen_bf16_to_fp32(const c10::BFloat16* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t bits;
    std::memcpy(&bits, x + i, sizeof bits);
    y[i] = bf16_value(bits);
  }
}

}  // namespace compacter::nn

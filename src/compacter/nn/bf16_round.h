// fp32 to bf16, rounded to the nearest bf16 with ties to even, exactly as c10::BFloat16's
// constructor (c10/util/BFloat16.h, round_to_nearest_even) rounds: add 0x7FFF plus the lowest
// kept bit to the fp32 bits and keep the upper 16; a NaN becomes the quiet NaN 0x7FC0. Written
// with integer operations only, so that GCC vectorises it, and always inlined, so that each CPU
// clone of a caller (nn/cpu_clones.h) gets its own vector code. The bf16 attention products
// (nn/batched_matmul.cpp) round each matrix with it while the matrix is still in cache.
#pragma once
#include <c10/util/BFloat16.h>

#include <cstdint>
#include <cstring>

namespace compacter::nn {

[[gnu::always_inline]] inline void round_fp32_to_bf16(const float* x, c10::BFloat16* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, x + i, sizeof u);
    const bool nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
    const auto bits = static_cast<uint16_t>(nan ? 0x7FC0u : (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    std::memcpy(y + i, &bits, sizeof bits);
  }
}

}  // namespace compacter::nn

// exp(x) in fp32 without branches or library calls, so that GCC vectorises the loops that call it
// (the fused cross-entropy, nn/cross_entropy.h). Cephes's expf method: x = n ln2 + r with n the
// nearest integer to x / ln2 and |r| <= ln2 / 2 (ln2 split in two so that n ln2 is exact), a
// degree-6 polynomial for exp(r), then the exponent n put into the float's bits. Within 2 ulp of
// exp (measured against double's exp in tests/nn/cross_entropy_test.cpp) over [-87.33, 88]; 0 below
// -87.33, where exp is subnormal (< 1.2e-38) or 0; +inf above 88.72; NaN for NaN.
// Compile callers with -ffp-contract=off where both CPU clones must round alike (nn/cpu_clones.h).
#pragma once
#include <cstdint>
#include <cstring>

namespace compacter::nn {

inline float exp_approx(float x) {
  constexpr float kLowest = -87.33654f;  // ln(2^-126): below it exp is not a normal float
  constexpr float kHighest = 88.72283f;  // ln(FLT_MAX)
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;  // ln2 = kLn2Hi + kLn2Lo, kLn2Hi with 9 bits
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to integer
  const float xc = x < kLowest ? kLowest : (x > kHighest ? kHighest : x);  // NaN stays NaN
  const float n = (xc * kLog2e + kRound) - kRound;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  // 2^n for n in [-126, 128] (128: the bits of +inf, so exp overflows to +inf).
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < kLowest ? 0.0f : p * scale;
}

}  // namespace compacter::nn

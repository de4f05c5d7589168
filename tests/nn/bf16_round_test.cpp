// nn::round_fp32_to_bf16 (the bf16 attention products' rounding, nn/bf16_round.h) against
// c10::BFloat16's constructor, libtorch's own rounding, bit for bit: every float of a dense sample
// of the bit patterns (both signs, every exponent, ties, denormals, infinities, NaNs), through a
// CPU-cloned caller as the library's is, and at every length and offset a vector loop splits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "compacter/nn/bf16_round.h"
#include "compacter/nn/cpu_clones.h"

namespace compacter::nn {
namespace {

COMPACTER_CPU_CLONES
void round_cloned(const float* x, c10::BFloat16* y, int64_t n) {
  round_fp32_to_bf16(x, y, n);
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Whether y is c10::BFloat16(x): the same bits, or a NaN for a NaN (c10's vector and scalar
// paths give NaNs different payloads).
bool same_as_c10(float x, c10::BFloat16 y) {
  if (std::isnan(x)) return std::isnan(static_cast<float>(y));
  return y.x == c10::BFloat16(x).x;
}

TEST(Bf16Round, EqualsC10sRoundingOnSampledBitPatterns) {
  std::vector<float> x;
  // Every 9973rd pattern (odd, so every low-bit combination comes up), and the neighbourhood of
  // each rounding boundary of a few exponents: ties (0x8000 dropped) with even and odd kept bits.
  for (uint64_t u = 0; u <= 0xFFFFFFFFull; u += 9973)
    x.push_back(from_bits(static_cast<uint32_t>(u)));
  for (uint32_t hi : {0x0000u, 0x0001u, 0x3F80u, 0x3F81u, 0x7F7Fu, 0x7F80u, 0x7FC0u, 0x8001u,
                      0xBF80u, 0xFF7Fu, 0xFF80u})
    for (uint32_t lo : {0x0000u, 0x0001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu})
      x.push_back(from_bits(hi << 16 | lo));
  for (float v : {0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                  -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                  std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min()})
    x.push_back(v);
  std::vector<c10::BFloat16> y(x.size());
  round_cloned(x.data(), y.data(), static_cast<int64_t>(x.size()));
  size_t wrong = 0;
  for (size_t i = 0; i < x.size(); ++i) wrong += !same_as_c10(x[i], y[i]);
  EXPECT_EQ(wrong, 0u) << "of " << x.size();
  // Rounding really happened: most samples lose bits.
  size_t changed = 0;
  for (size_t i = 0; i < x.size(); ++i) changed += static_cast<float>(y[i]) != x[i];
  EXPECT_GT(changed, x.size() / 2);
}

TEST(Bf16Round, EveryLengthAndOffsetWritesExactlyItsRange) {
  std::vector<float> x(80);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 1.0f + static_cast<float>(i) / 3.0f;
  for (int64_t offset : {0, 1, 3}) {
    for (int64_t n = 0; n <= 70; ++n) {
      std::vector<c10::BFloat16> y(x.size(), c10::BFloat16(-7.0f));
      round_cloned(x.data() + offset, y.data() + offset, n);
      for (int64_t i = 0; i < static_cast<int64_t>(y.size()); ++i) {
        const bool inside = i >= offset && i < offset + n;
        EXPECT_EQ(y[i].x, inside ? c10::BFloat16(x[i]).x : c10::BFloat16(-7.0f).x)
            << "n " << n << " offset " << offset << " i " << i;
      }
    }
  }
}

}  // namespace
}  // namespace compacter::nn

// The maximum of a row of fp32 values, in 16 partial maxima (one AVX-512 register), so that GCC
// vectorises it. Always inlined, so that each CPU clone of a caller (nn/cpu_clones.h) gets its own
// vector code. The fused softmax (nn/softmax_dropout.cpp) and the fused cross-entropy
// (nn/cross_entropy.cpp) take it as their rows' shift before exp. A NaN is not propagated here (the
// comparisons skip it); the callers' exp of x - m makes it NaN.
#pragma once
#include <cstdint>
#include <limits>

namespace compacter::nn {

[[gnu::always_inline]] inline float row_max(const float* x, int64_t n) {
  constexpr int kLanes = 16;
  float mx[kLanes];
  for (float& v : mx) v = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) mx[l] = x[j + l] > mx[l] ? x[j + l] : mx[l];
  float m = -std::numeric_limits<float>::infinity();
  for (float v : mx) m = v > m ? v : m;
  for (int64_t t = j; t < n; ++t) m = x[t] > m ? x[t] : m;
  return m;
}

}  // namespace compacter::nn

// The hash-based dropout masks' rule (nn/dropout.h), shared by the kernels that apply it
// (nn/dropout.cpp; the attention's fused softmax and dropout, nn/softmax_dropout.h): element i of
// a call's tensor, in its logical row-major order, is kept when the top 24 bits of
// SplitMix64(seed + i * golden) are at least round(p * 2^24); the seed is drawn once per call
// from libtorch's default CPU generator.
#pragma once
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <cstdint>
#include <mutex>

namespace compacter::nn::dropout_hash {

// The hash's step between consecutive elements (2^64 / golden ratio, SplitMix64's increment).
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

inline uint64_t splitmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

inline uint64_t threshold(double p) {
  return static_cast<uint64_t>(std::llround(p * 16777216.0));  // p * 2^24
}

// Whether the element whose hash argument is z (seed + i * golden) is kept.
inline bool keeps(uint64_t z, uint64_t threshold) {
  return (splitmix64(z) >> 40) >= threshold;
}

inline uint64_t draw_seed() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
}

}  // namespace compacter::nn::dropout_hash

// Parallel hash-based dropout masks on the CPU (see dropout.h).
#include "compacter/nn/dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <mutex>

#include "compacter/core/error.h"

namespace compacter::nn {

namespace {

inline uint64_t splitmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t draw_seed() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
}

}  // namespace

torch::Tensor dropout_mask(torch::IntArrayRef sizes, double p, uint64_t seed,
                           torch::ScalarType dtype) {
  check(p >= 0.0 && p < 1.0, "dropout probability must be in [0, 1), got ", p);
  torch::Tensor mask = torch::empty(sizes, torch::TensorOptions().dtype(dtype));
  const auto threshold = static_cast<uint64_t>(std::llround(p * 16777216.0));  // p * 2^24
  const double keep_scale = 1.0 / (1.0 - p);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, dtype, "dropout_mask", [&] {
    scalar_t* out = mask.data_ptr<scalar_t>();
    const auto scale = static_cast<scalar_t>(keep_scale);
    const auto zero = static_cast<scalar_t>(0);
    at::parallel_for(0, mask.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const uint64_t h = splitmix64(seed + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ULL);
        out[i] = (h >> 40) >= threshold ? scale : zero;
      }
    });
  });
  return mask;
}

torch::Tensor dropout(const torch::Tensor& x, double p, bool training) {
  if (!training || p == 0.0) return x;
  if (!x.device().is_cpu()) return torch::dropout(x, p, training);
  return x * dropout_mask(x.sizes(), p, draw_seed(), x.scalar_type());
}

}  // namespace compacter::nn

// Rounding to bf16 by its definition, for tests of bf16 products: a float's top 16 bits, rounded
// to nearest with ties to even on the 16 bits dropped (no NaN or infinity handling: the tests
// round finite values).
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace compacter::testing {

// Each value of `d` (any floating dtype; through float, exact for the small integers the tests
// use) rounded to bf16, returned as float.
inline torch::Tensor round_to_bf16(const torch::Tensor& d) {
  const torch::Tensor f = d.to(torch::kFloat32).contiguous();
  torch::Tensor out = torch::empty_like(f);
  const auto* in = reinterpret_cast<const uint32_t*>(f.data_ptr<float>());
  auto* o = reinterpret_cast<uint32_t*>(out.data_ptr<float>());
  for (int64_t i = 0; i < f.numel(); ++i) {
    const uint32_t u = in[i], lsb = (u >> 16) & 1u;
    o[i] = ((u + 0x7FFFu + lsb) >> 16) << 16;
  }
  return out;
}

}  // namespace compacter::testing

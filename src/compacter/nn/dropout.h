// Dropout (inverted: kept values scaled by 1 / (1 - p)) whose CPU masks come from a
// counter-based hash (SplitMix64 of a per-call seed and the element's index), computed in parallel.
// libtorch's CPU dropout draws every element serially from one mt19937 (bernoulli_): measured with
// bench/profile_summary.py, that was 10% of an fp32 and 26% of a bf16-autocast Compacter++ step
// on t5-small (2 cores). The per-call seed is drawn from libtorch's default CPU generator, so a
// run is reproduced by its seed and resumed from the generator's saved state, as before. On CUDA
// this is torch::dropout.
#pragma once
#include <torch/torch.h>

namespace compacter::nn {

torch::Tensor dropout(const torch::Tensor& x, double p, bool training);

// The mask dropout(x, p, true) multiplies by for a given seed: 0 or 1 / (1 - p), in `dtype`.
// Element i is kept when the top 24 bits of SplitMix64(seed + i * 0x9E3779B97F4A7C15) are at least
// round(p * 2^24).
torch::Tensor dropout_mask(torch::IntArrayRef sizes, double p, uint64_t seed,
                           torch::ScalarType dtype);

}  // namespace compacter::nn

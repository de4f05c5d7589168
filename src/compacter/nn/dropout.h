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

// dropout(relu(x), p, training), the same values and gradients. On the CPU in fp32 (and fp64) one
// pass that keeps a 1-byte mask for the backward instead of relu's output (T5 v1.0's feed-forward:
// 4M values per encoder layer at batch 16, source 128). Measured on a t5-small Compacter++ step
// (2-core VM): fp32 peak memory 1542 -> 1410 MB, time 1.98-2.22 -> 1.94-2.00 s. Also in bf16 since
// its loop is vectorised (bench/results/bf16-dropout-vm-20261206: a bf16-autocast step 0.98-1.15
// -> 0.81-0.88 s with the vectorised bf16 loop); fp16 keeps relu + dropout.
torch::Tensor relu_dropout(const torch::Tensor& x, double p, bool training);

// h + dropout(y, p, training): the same values and gradients (the residual connection after a T5
// sublayer, spec §1.2: h + dropout(sublayer(norm(h)))). On the CPU, for fp32 h and y, bf16 h and
// y, or fp32 h and bf16 y (bf16 autocast: an fp32 residual stream, a bf16 sublayer output), one
// pass reading h and y and writing the sum, where the two ops wrote dropout's output and read it
// back: y's kept elements scaled and rounded to y's dtype, as dropout rounds them, then added to h
// in the result's dtype, as the add does. The gradient of h is the output's; y's is dropout's, of
// the output's gradient in y's dtype. Anything else (other dtypes or devices, broadcasting) is
// the two operations.
torch::Tensor add_dropout(const torch::Tensor& h, const torch::Tensor& y, double p, bool training);

// The mask dropout(x, p, true) multiplies by for a given seed: 0 or 1 / (1 - p), in `dtype`.
// Element i is kept when the top 24 bits of SplitMix64(seed + i * 0x9E3779B97F4A7C15) are at least
// round(p * 2^24).
torch::Tensor dropout_mask(torch::IntArrayRef sizes, double p, uint64_t seed,
                           torch::ScalarType dtype);

}  // namespace compacter::nn

// An independent, deliberately naive reference of Hugging Face's T5ForConditionalGeneration
// forward pass (eval mode: no dropout), written with plain loops in double precision from the
// model's definition; with cfg.model_type "umt5", of UMT5ForConditionalGeneration (a relative-
// position bias in every self-attention layer, modeling_umt5.py). Tests use it as an oracle for the
// libtorch model; torch::Tensor is used only as a container for inputs and weights.
#pragma once
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "compacter/io/t5_config.h"

namespace compacter::testing {

struct NaiveT5Output {
  std::vector<int64_t> logits_shape;   // [B, T, V]
  std::vector<double> logits;          // row-major
  std::vector<int64_t> encoder_shape;  // [B, S, d_model]
  std::vector<double> encoder_last_hidden_state;
  double loss = NAN;  // mean cross-entropy over labels != -100; NaN without labels
};

// weights: HF names -> CPU tensors of any floating dtype (lm_head.weight only when
// tie_word_embeddings is false; for umt5 a relative_attention_bias in every block's
// SelfAttention). input_ids / attention_mask [B, S], decoder_input_ids / labels
// [B, T], integer tensors. attention_mask and labels may be undefined (all ones / no loss).
// Throws std::runtime_error naming a missing or wrongly shaped weight.
NaiveT5Output naive_t5_forward(const compacter::T5Config& cfg,
                               const std::map<std::string, torch::Tensor>& weights,
                               const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                               const torch::Tensor& decoder_input_ids, const torch::Tensor& labels);

// HF `_shift_right`: out[:, 0] = start_id, out[:, 1:] = labels[:, :-1], then -100 -> pad_id.
torch::Tensor naive_shift_right(const torch::Tensor& labels, int64_t start_id, int64_t pad_id = 0);

// HF `T5Attention._relative_position_bucket` for one relative position rel = key - query,
// reproducing HF's float32 arithmetic exactly (see the .cpp for why plain double is not enough).
int64_t naive_relative_position_bucket(int64_t rel, bool bidirectional, int64_t num_buckets,
                                       int64_t max_distance);

// Random float32 weights for any config, HF names and shapes, drawn from a seeded std::mt19937
// (platform-independent normal sampler) with HF-like init scales, so activations stay O(1).
std::map<std::string, torch::Tensor> naive_random_t5_weights(const compacter::T5Config& cfg,
                                                             uint64_t seed);

}  // namespace compacter::testing

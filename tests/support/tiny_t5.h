// Small T5 shapes for tests: one place that writes a T5Config field by field, so a test states
// only the sizes it cares about. Defaults: vocabulary 40, d_model 8, d_kv 4, 2 heads, d_ff 16,
// 2 layers in each stack, T5 v1.0 (ReLU, tied embeddings); `v1_1` gives gated-GELU and an untied
// lm_head.
#pragma once
#include <cstdint>

#include "compacter/io/t5_config.h"
#include "compacter/nn/t5.h"

namespace compacter::testing {

struct TinyT5 {
  int64_t vocab = 40, d_model = 8, d_kv = 4, heads = 2, d_ff = 16, layers = 2;
  int64_t decoder_layers = -1;  // -1: as many as the encoder
  bool v1_1 = false;
};

T5Config tiny_t5_config(const TinyT5& shape = {});

// A model of that config with Hugging Face's init drawn from `seed` (init_weights), left in
// libtorch's default (training) mode.
nn::T5Model tiny_t5(const TinyT5& shape = {}, uint64_t seed = 1);

}  // namespace compacter::testing

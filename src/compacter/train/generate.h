// Greedy generation with an incremental decoder (cached self- and cross-attention keys/values).
#pragma once
#include <torch/types.h>

#include "compacter/nn/t5.h"

namespace compacter {

struct GenerateOptions {
  int64_t max_new_tokens = 20;
};

// input_ids / attention_mask: [B, S] (right-padded). Returns [B, L] new token ids (without the
// decoder start token), L <= max_new_tokens; a sequence stops at </s> (kept) and is then padded
// with pad ids, as Hugging Face's greedy search does. Runs in eval mode without gradients.
torch::Tensor greedy_generate(nn::T5ModelImpl& model, const torch::Tensor& input_ids,
                              const torch::Tensor& attention_mask,
                              const GenerateOptions& options = {});

}  // namespace compacter

// Greedy generation with an incremental decoder (cached self- and cross-attention keys/values):
// the decoding library (train/decoding/decode.h) in greedy mode with the model config's ids.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <functional>

#include "compacter/nn/t5.h"

namespace compacter {

struct GenerateOptions {
  int64_t max_new_tokens = 20;
  // false: run all max_new_tokens steps even once every sequence has ended (the ended rows are
  // still computed, and padded as always), for benchmarks that need a fixed amount of work.
  bool stop_when_all_finished = true;
  // Called after each step once its tokens [B] are known (step counts from 0), e.g. to time the
  // first token; it may throw to stop.
  std::function<void(int64_t step, const torch::Tensor& tokens)> on_step;
};

// input_ids / attention_mask: [B, S] (right-padded). Returns [B, L] new token ids (without the
// decoder start token), L <= max_new_tokens; a sequence stops at </s> (kept) and is then padded
// with pad ids, as Hugging Face's greedy search does (L = max_new_tokens when
// !stop_when_all_finished). Runs in eval mode without gradients.
torch::Tensor greedy_generate(nn::T5ModelImpl& model, const torch::Tensor& input_ids,
                              const torch::Tensor& attention_mask,
                              const GenerateOptions& options = {});

}  // namespace compacter

// The incremental decoder that greedy search, sampling and beam search share: one encoder pass,
// its states repeated for the rows that decode each input (beams, samples), and one decoder
// position per step with cached self- and cross-attention keys/values (nn/t5.h DecoderCache).
// Rows can be reordered (beams: the self-attention cache follows each beam's parent, copied
// into a new room, nn/attention_cache.h; nothing recomputed) or dropped (finished inputs stop
// costing compute).
#pragma once
#include <torch/types.h>

#include <cstdint>

#include "compacter/nn/t5.h"

namespace compacter::decoding {

class DecoderState {
 public:
  // Runs the encoder on input_ids / attention_mask [B, S] (model.before_forward first) and
  // repeats each input's states `rows_per_input` times (row b * n + i decodes input b).
  DecoderState(nn::T5ModelImpl& model, const torch::Tensor& input_ids,
               const torch::Tensor& attention_mask, int64_t rows_per_input);

  // Feeds one token per row ([R] ids on any device) and returns the next-token logits [R, V]
  // in float32.
  torch::Tensor step(const torch::Tensor& tokens);

  // Keeps the rows `index` ([R'] ids into the current rows, in the new order) of everything:
  // caches, encoder states and mask.
  void keep_rows(const torch::Tensor& index);
  // Reorders the self-attention caches only (rows of one input share their encoder states).
  void reorder_self_attention(const torch::Tensor& index);

  int64_t rows() const { return encoder_states_.size(0); }
  torch::Device device() const { return encoder_states_.device(); }

 private:
  nn::T5ModelImpl& model_;
  torch::Tensor encoder_states_, encoder_mask_;
  nn::DecoderCache cache_;
};

// Puts the model in eval mode (no dropout) and no-grad for a scope, restoring its mode after.
class InferenceMode {
 public:
  explicit InferenceMode(nn::T5ModelImpl& model);
  ~InferenceMode();
  InferenceMode(const InferenceMode&) = delete;
  InferenceMode& operator=(const InferenceMode&) = delete;

 private:
  nn::T5ModelImpl& model_;
  bool was_training_;
  torch::NoGradGuard no_grad_;
};

}  // namespace compacter::decoding

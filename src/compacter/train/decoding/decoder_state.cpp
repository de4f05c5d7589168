// Incremental decoding state with row reordering and dropping (see the header).
#include "compacter/train/decoding/decoder_state.h"

#include <torch/torch.h>

#include "compacter/core/error.h"

namespace compacter::decoding {

DecoderState::DecoderState(nn::T5ModelImpl& model, const torch::Tensor& input_ids,
                           const torch::Tensor& attention_mask, int64_t rows_per_input)
    : model_(model) {
  check(input_ids.dim() == 2, "input_ids must be [batch, length]");
  if (model.before_forward) model.before_forward();
  std::tie(encoder_states_, encoder_mask_) = model.encoder->encode(input_ids, attention_mask);
  if (model.rows) model.rows->repeat_interleave(rows_per_input);  // per-row variants follow
  if (rows_per_input > 1) {
    encoder_states_ = encoder_states_.repeat_interleave(rows_per_input, 0);
    if (encoder_mask_.defined()) encoder_mask_ = encoder_mask_.repeat_interleave(rows_per_input, 0);
  }
}

torch::Tensor DecoderState::step(const torch::Tensor& tokens) {
  torch::Tensor ids = tokens.to(encoder_states_.device(), torch::kLong).view({-1, 1});
  torch::Tensor h = model_.decoder->decode(ids, encoder_states_, encoder_mask_, &cache_);
  return model_.lm_head->forward(h.select(1, -1)).to(torch::kFloat32);
}

void DecoderState::reorder_self_attention(const torch::Tensor& index) {
  const torch::Tensor i = index.to(encoder_states_.device(), torch::kLong);
  for (auto& c : cache_.self_attention) c.select_rows(i);
}

void DecoderState::keep_rows(const torch::Tensor& index) {
  const torch::Tensor i = index.to(encoder_states_.device(), torch::kLong);
  reorder_self_attention(i);
  if (model_.rows) model_.rows->keep(i);
  for (auto& c : cache_.cross_attention) {
    if (!c.key.defined()) continue;
    c.key = c.key.index_select(0, i);
    c.value = c.value.index_select(0, i);
  }
  encoder_states_ = encoder_states_.index_select(0, i);
  if (encoder_mask_.defined()) encoder_mask_ = encoder_mask_.index_select(0, i);
}

InferenceMode::InferenceMode(nn::T5ModelImpl& model)
    : model_(model), was_training_(model.is_training()) {
  model_.eval();
}

InferenceMode::~InferenceMode() {
  if (was_training_) model_.train();
}

}  // namespace compacter::decoding

// T5 multi-head attention (HF T5Attention): q, k, v, o without bias, no 1/sqrt(d_kv) scaling,
// softmax in fp32, relative-position bias owned by block 0 of each stack (spec §1.1), or by
// every self-attention layer for UMT5 (the same bucket function, bidirectional in the encoder and
// causal in the decoder; cross-attention never has one).
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "compacter/io/t5_config.h"
#include "compacter/nn/attention_cache.h"
#include "compacter/nn/layers.h"

namespace compacter::nn {

// HF's _relative_position_bucket, elementwise over relative positions (key - query), computed in
// float32 exactly as HF does so buckets agree at the edges.
torch::Tensor relative_position_bucket(const torch::Tensor& relative_position, bool bidirectional,
                                       int64_t num_buckets, int64_t max_distance);

class T5AttentionImpl : public torch::nn::Module {
 public:
  T5AttentionImpl(const T5Config& config, bool causal, bool has_relative_bias);

  // Position bias [1, H, q_len, k_len] for queries at q_offset .. q_offset + q_len - 1.
  torch::Tensor position_bias(int64_t q_len, int64_t k_len, int64_t q_offset) const;

  // hidden: [B, q, d]. key_value: undefined for self-attention, encoder states for
  // cross-attention. bias: additive [B|1, H|1, q, k] (position bias + masks), may be undefined.
  // cache: self-attention appends this step's keys/values; cross-attention computes them once.
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& key_value,
                        const torch::Tensor& bias, AttentionCache* cache = nullptr);

  Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  EmbeddingTable relative_attention_bias{nullptr};  // [buckets, H]; only when has_relative_bias
  // Scale points (nn/hooks.h): when defined, k(x) and v(x) [..., H*d_kv] are multiplied feature
  // by feature by these tensors (H*d_kv elements each, in order, any shape) before the heads are
  // split and cached. Whoever sets them owns (registers) the tensors.
  torch::Tensor key_scale, value_scale;
  // Per-row key and value scales (nn/rows.h: tables [V, H*d_kv]), used instead when set.
  std::shared_ptr<RowTable> row_key_scale, row_value_scale;

 private:
  torch::Tensor split_heads(const torch::Tensor& x) const;  // [B, T, H*dk] -> [B, H, T, dk]
  int64_t heads_, d_kv_, buckets_, max_distance_;
  bool causal_;
  double dropout_;
};
TORCH_MODULE(T5Attention);

}  // namespace compacter::nn

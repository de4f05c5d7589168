// T5 attention and relative-position buckets (spec §1.1; HF modeling_t5.T5Attention).
#include "compacter/nn/attention.h"

#include <torch/torch.h>

#include <cmath>

#include "compacter/nn/batched_matmul.h"
#include "compacter/nn/softmax_dropout.h"

namespace compacter::nn {

torch::Tensor relative_position_bucket(const torch::Tensor& relative_position, bool bidirectional,
                                       int64_t num_buckets, int64_t max_distance) {
  torch::Tensor ret = torch::zeros_like(relative_position);
  torch::Tensor n;
  if (bidirectional) {
    num_buckets /= 2;
    ret = ret + (relative_position > 0).to(torch::kLong) * num_buckets;
    n = relative_position.abs();
  } else {
    n = -torch::clamp_max(relative_position, 0);
  }
  const int64_t max_exact = num_buckets / 2;
  torch::Tensor is_small = n < max_exact;
  // log(n / max_exact) / log(max_distance / max_exact) * (num_buckets - max_exact), in float32
  // like HF; n is clamped to 1 so the (unused) small-n branch has no log(0).
  torch::Tensor large =
      torch::log(n.clamp_min(1).to(torch::kFloat32) / static_cast<double>(max_exact)) /
      std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)) *
      static_cast<double>(num_buckets - max_exact);
  large = (large.to(torch::kLong) + max_exact).clamp_max(num_buckets - 1);
  return ret + torch::where(is_small, n, large);
}

T5AttentionImpl::T5AttentionImpl(const T5Config& c, bool causal, bool has_relative_bias)
    : heads_(c.num_heads),
      d_kv_(c.d_kv),
      buckets_(c.relative_attention_num_buckets),
      max_distance_(c.relative_attention_max_distance),
      causal_(causal),
      dropout_(c.dropout_rate) {
  const int64_t inner = c.inner_dim();
  q = register_module("q", Linear(c.d_model, inner));
  k = register_module("k", Linear(c.d_model, inner));
  v = register_module("v", Linear(c.d_model, inner));
  o = register_module("o", Linear(inner, c.d_model));
  if (has_relative_bias)
    relative_attention_bias =
        register_module("relative_attention_bias", EmbeddingTable(buckets_, heads_));
}

torch::Tensor T5AttentionImpl::position_bias(int64_t q_len, int64_t k_len, int64_t q_offset) const {
  const auto& w = relative_attention_bias->weight;
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(w.device());
  torch::Tensor query_pos = torch::arange(q_offset, q_offset + q_len, opts).unsqueeze(1);
  torch::Tensor key_pos = torch::arange(k_len, opts).unsqueeze(0);
  torch::Tensor buckets =
      relative_position_bucket(key_pos - query_pos, !causal_, buckets_, max_distance_);
  // [q, k, H] -> [1, H, q, k], laid out in that order: the sum with the padding mask, shared by
  // every layer, then is too, and the attention's softmax reads its rows with a unit stride.
  return torch::embedding(w, buckets).permute({2, 0, 1}).unsqueeze(0).contiguous();
}

torch::Tensor T5AttentionImpl::split_heads(const torch::Tensor& x) const {
  return x.view({x.size(0), x.size(1), heads_, d_kv_}).transpose(1, 2);
}

torch::Tensor T5AttentionImpl::forward(const torch::Tensor& hidden, const torch::Tensor& key_value,
                                       const torch::Tensor& bias, AttentionCache* cache) {
  const int64_t batch = hidden.size(0), q_len = hidden.size(1);
  torch::Tensor query = split_heads(q(hidden));
  torch::Tensor key, value;
  const bool cross = key_value.defined();
  if (cross && cache && cache->key.defined()) {
    key = cache->key;
    value = cache->value;
  } else {
    const torch::Tensor& source = cross ? key_value : hidden;
    key = split_heads(apply_scale(k(source), key_scale, row_key_scale));
    value = split_heads(apply_scale(v(source), value_scale, row_value_scale));
    if (cache && !cross) {  // this step's positions after the cached ones (nn/attention_cache.h)
      cache->append(key, value);
      key = cache->key;
      value = cache->value;
    } else if (cache) {
      cache->key = key;
      cache->value = value;
    }
  }
  torch::Tensor scores = batched_matmul(query, key.transpose(-1, -2));  // no 1/sqrt(d) scaling
  // dropout(softmax(scores + bias)), the softmax in at least float32 (HF's scores.float()).
  const torch::Tensor weights = softmax_dropout(scores, bias, dropout_, is_training());
  // [B, H, q, dk], laid out as the query ([B, q, H, dk] in memory): the reshape below is a view.
  torch::Tensor out = batched_matmul(weights, value, query);
  return o(out.transpose(1, 2).reshape({batch, q_len, heads_ * d_kv_}));
}

}  // namespace compacter::nn

// Hugging Face T5 tensor names and shapes (modeling_t5.T5ForConditionalGeneration; mT5 has the
// same names; modeling_umt5.UMT5ForConditionalGeneration adds a relative_attention_bias to the
// self-attention of every block, encoder and decoder, where T5 has one in block 0 only).
#include "compacter/io/hf_names.h"

namespace compacter {

std::vector<HfTensorSpec> hf_t5_tensors(const T5Config& c) {
  const int64_t d = c.d_model, inner = c.inner_dim(), ff = c.d_ff;
  const bool every_block = c.per_layer_position_bias();
  std::vector<HfTensorSpec> out;
  out.push_back({"shared.weight", {c.vocab_size, d}});
  auto attention = [&](const std::string& p, bool relative_bias) {
    out.push_back({p + ".q.weight", {inner, d}});
    out.push_back({p + ".k.weight", {inner, d}});
    out.push_back({p + ".v.weight", {inner, d}});
    out.push_back({p + ".o.weight", {d, inner}});
    if (relative_bias)
      out.push_back(
          {p + ".relative_attention_bias.weight", {c.relative_attention_num_buckets, c.num_heads}});
  };
  auto feed_forward = [&](const std::string& p) {
    if (c.is_gated()) {
      out.push_back({p + ".DenseReluDense.wi_0.weight", {ff, d}});
      out.push_back({p + ".DenseReluDense.wi_1.weight", {ff, d}});
    } else {
      out.push_back({p + ".DenseReluDense.wi.weight", {ff, d}});
    }
    out.push_back({p + ".DenseReluDense.wo.weight", {d, ff}});
    out.push_back({p + ".layer_norm.weight", {d}});
  };
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string b = "encoder.block." + std::to_string(i) + ".layer.";
    attention(b + "0.SelfAttention", i == 0 || every_block);
    out.push_back({b + "0.layer_norm.weight", {d}});
    feed_forward(b + "1");
  }
  out.push_back({"encoder.final_layer_norm.weight", {d}});
  for (int64_t i = 0; i < c.decoder_layers(); ++i) {
    const std::string b = "decoder.block." + std::to_string(i) + ".layer.";
    attention(b + "0.SelfAttention", i == 0 || every_block);
    out.push_back({b + "0.layer_norm.weight", {d}});
    attention(b + "1.EncDecAttention", false);
    out.push_back({b + "1.layer_norm.weight", {d}});
    feed_forward(b + "2");
  }
  out.push_back({"decoder.final_layer_norm.weight", {d}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, d}});
  return out;
}

std::optional<std::string> hf_t5_alias_target(const T5Config& c, const std::string& name) {
  if (name == "encoder.embed_tokens.weight" || name == "decoder.embed_tokens.weight")
    return std::string("shared.weight");
  if (name == "lm_head.weight" && c.tie_word_embeddings) return std::string("shared.weight");
  return std::nullopt;
}

}  // namespace compacter

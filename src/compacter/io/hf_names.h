// The one table of Hugging Face T5 tensor names: for a config, every tensor a checkpoint holds,
// with its shape, plus the aliases Hugging Face accepts for tied tensors.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compacter/io/t5_config.h"

namespace compacter {

struct HfTensorSpec {
  std::string name;            // e.g. "encoder.block.0.layer.0.SelfAttention.q.weight"
  std::vector<int64_t> shape;  // e.g. {inner_dim, d_model}
};

// Every tensor of a T5ForConditionalGeneration checkpoint (or MT5 / UMT5ForConditionalGeneration
// by the config's model_type), in Hugging Face's order. Tied names
// (encoder/decoder.embed_tokens.weight, and lm_head.weight when tied) are not listed: see below.
std::vector<HfTensorSpec> hf_t5_tensors(const T5Config& c);

// Names that some checkpoints store as copies of a listed tensor: returns the listed tensor's
// name ("shared.weight" for "encoder.embed_tokens.weight"), or nullopt when `name` is no alias.
std::optional<std::string> hf_t5_alias_target(const T5Config& c, const std::string& name);

}  // namespace compacter

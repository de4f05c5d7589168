// T5Config: the shape of a T5 model, read from / written to a Hugging Face config.json.
// Each field is declared once, in T5_CONFIG_FIELDS, which drives parsing, writing and printing.
//
// model_type names the architecture: "t5" and "mt5" (the same network: mT5 is T5 v1.1 with a
// larger vocabulary) and "umt5" (transformers' modeling_umt5: every self-attention layer owns
// its relative-position bias instead of sharing block 0's). A config.json without model_type is
// read as "t5" (as before model_type was read); any other type (longt5, switch_transformers,
// ...) is refused by name when the config is parsed.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace compacter {

// X(type, name, default, required, help). `required` fields must be present in config.json.
#define COMPACTER_T5_CONFIG_FIELDS(X)                                                           \
  X(std::string, model_type, "t5", false, "t5 | mt5 | umt5 (absent: t5)")                       \
  X(int64_t, vocab_size, 32128, true, "rows of the shared embedding")                           \
  X(int64_t, d_model, 512, true, "hidden size")                                                 \
  X(int64_t, d_kv, 64, true, "size of one attention head")                                      \
  X(int64_t, d_ff, 2048, true, "inner size of the feed-forward layer")                          \
  X(int64_t, num_layers, 6, true, "encoder blocks")                                             \
  X(int64_t, num_decoder_layers, -1, false, "decoder blocks (-1: same as num_layers)")          \
  X(int64_t, num_heads, 8, true, "attention heads")                                             \
  X(int64_t, relative_attention_num_buckets, 32, false, "relative-position buckets")            \
  X(int64_t, relative_attention_max_distance, 128, false, "distance of the last bucket")        \
  X(double, dropout_rate, 0.1, false, "dropout probability everywhere")                         \
  X(double, layer_norm_epsilon, 1e-6, false, "epsilon of the RMS norm")                         \
  X(std::string, feed_forward_proj, "relu", false, "relu | gelu | gated-gelu | gated-relu ...") \
  X(bool, tie_word_embeddings, true, false, "lm_head shares the embedding (T5 v1.0)")           \
  X(int64_t, pad_token_id, 0, false, "padding id")                                              \
  X(int64_t, eos_token_id, 1, false, "end-of-sequence id")                                      \
  X(int64_t, decoder_start_token_id, 0, false, "first decoder input id")

// The largest sizes a config.json may ask for (T5Config::validate), far above every released
// T5 (t5-11b: d_ff 65,536, 128 heads; mT5: 250,112 ids; ByT5-xxl: 36 encoder blocks) and bounded
// so that a hostile file cannot make a model allocate without bound: 2^40 weights at most.
struct T5ConfigLimits {
  int64_t vocab_size = int64_t{1} << 22;  // 4,194,304 ids
  int64_t width = int64_t{1} << 18;       // d_model, d_kv, d_ff: 262,144
  int64_t layers = 1024;                  // encoder or decoder blocks
  int64_t heads = 1024;
  int64_t buckets = 4096;                 // relative_attention_num_buckets
  int64_t distance = int64_t{1} << 20;    // relative_attention_max_distance
  int64_t parameters = int64_t{1} << 40;  // weights of the model as a whole
};

struct T5Config {
#define COMPACTER_DECLARE_FIELD(type, name, def, required, help) type name = def;
  COMPACTER_T5_CONFIG_FIELDS(COMPACTER_DECLARE_FIELD)
#undef COMPACTER_DECLARE_FIELD

  // Derived from feed_forward_proj (Hugging Face's rule: "gated-X" is gated, X is the
  // activation, and "gated-gelu" means the tanh approximation gelu_new).
  bool is_gated() const;
  std::string activation() const;  // relu | gelu | gelu_new | silu
  int64_t decoder_layers() const {
    return num_decoder_layers < 0 ? num_layers : num_decoder_layers;
  }
  int64_t inner_dim() const {
    return num_heads * d_kv;
  }
  // UMT5: each self-attention layer (not only block 0 of each stack) has its own
  // relative_attention_bias; the bias is never shared across layers.
  bool per_layer_position_bias() const {
    return model_type == "umt5";
  }

  // Throws Error naming the field when a value is out of range.
  void validate() const;
};

// The model types read, as "t5, mt5, umt5" (for errors and help texts).
std::string supported_model_types();
// Throws Error `model_type "X" in SOURCE: not supported; supported: t5, mt5, umt5` for any other.
void check_model_type(const std::string& model_type, const std::string& source);

// Parses a config.json object; `source` names the file in error messages. model_type is checked
// first, so that another architecture's config is refused by its type, not by a missing field.
T5Config t5_config_from_json(const nlohmann::json& j, const std::string& source);
T5Config load_t5_config(const std::string& path);  // reads and parses a config.json file
// The config as Hugging Face writes it (model_type and its architectures, every field).
nlohmann::json t5_config_to_json(const T5Config& c);

// Built-in published configs (t5-small, t5-base, t5-large, t5-3b, t5-11b, t5-v1_1-small/base);
// throws Error listing the known names for an unknown one. "google/" before a name is ignored.
T5Config builtin_t5_config(const std::string& name);
// Their names, in that order, as "t5-small, t5-base, ..." (for help texts and errors).
std::string builtin_t5_config_names();
// A config from a built-in name or a directory / config.json path.
T5Config resolve_t5_config(const std::string& name_or_path);

}  // namespace compacter

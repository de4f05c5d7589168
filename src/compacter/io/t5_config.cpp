// Reading, writing and checking Hugging Face T5 config.json files (model types t5, mt5, umt5:
// transformers' T5Config, MT5Config, UMT5Config); built-in published configs.
#include "compacter/io/t5_config.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/core/json_file.h"

namespace compacter {

namespace {

template <typename T>
T read_field(const nlohmann::json& j, const char* name, const std::string& source) {
  const nlohmann::json& v = j.at(name);
  try {
    if constexpr (std::is_same_v<T, int64_t>) {
      // A JSON integer above 2^63 - 1 would wrap around to a negative one.
      check(v.is_number_integer() &&
                !(v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)),
            "expected an integer (at most 2^63 - 1)");
    } else if constexpr (std::is_same_v<T, double>) {
      check(v.is_number(), "expected a number");
    } else if constexpr (std::is_same_v<T, bool>) {
      check(v.is_boolean(), "expected true or false");
    } else {
      check(v.is_string(), "expected a string");
    }
    return v.get<T>();
  } catch (const std::exception& e) {
    throw Error(cat(source, ": field \"", name, "\": ", e.what(), ", got ", v.dump()));
  }
}

constexpr const char* kModelTypes[] = {"t5", "mt5", "umt5"};

// The architectures entry transformers writes for each model type.
const char* architecture(const std::string& model_type) {
  if (model_type == "mt5") return "MT5ForConditionalGeneration";
  if (model_type == "umt5") return "UMT5ForConditionalGeneration";
  return "T5ForConditionalGeneration";
}

}  // namespace

std::string supported_model_types() {
  std::string out;
  for (const char* t : kModelTypes) out += cat(out.empty() ? "" : ", ", t);
  return out;
}

void check_model_type(const std::string& model_type, const std::string& source) {
  for (const char* t : kModelTypes)
    if (model_type == t) return;
  throw Error(cat("model_type \"", model_type, "\" in ", source,
                  ": not supported; supported: ", supported_model_types()));
}

bool T5Config::is_gated() const {
  return feed_forward_proj.rfind("gated-", 0) == 0;
}

std::string T5Config::activation() const {
  std::string act = is_gated() ? feed_forward_proj.substr(6) : feed_forward_proj;
  if (is_gated() && act == "gelu") return "gelu_new";
  return act;
}

void T5Config::validate() const {
  check_model_type(model_type, "the config");
  // Each size between 1 and its limit (T5ConfigLimits in t5_config.h), so that no config.json can
  // make a model allocate without bound before its weights are read.
  auto in_range = [](int64_t v, const char* name, int64_t limit) {
    check(v > 0, "config field \"", name, "\" must be positive, got ", v);
    check(v <= limit, "config field \"", name, "\" is ", v, ", above the limit ", limit);
  };
  const T5ConfigLimits l;
  in_range(vocab_size, "vocab_size", l.vocab_size);
  in_range(d_model, "d_model", l.width);
  in_range(d_kv, "d_kv", l.width);
  in_range(d_ff, "d_ff", l.width);
  in_range(num_layers, "num_layers", l.layers);
  in_range(decoder_layers(), "num_decoder_layers", l.layers);
  in_range(num_heads, "num_heads", l.heads);
  in_range(relative_attention_num_buckets, "relative_attention_num_buckets", l.buckets);
  in_range(relative_attention_max_distance, "relative_attention_max_distance", l.distance);
  // The weights at most: embeddings, attention and feed-forward matrices of every block.
  const double weights = static_cast<double>(vocab_size) * d_model * 2 +
                         static_cast<double>(num_layers + 2 * decoder_layers()) *
                             (4.0 * d_model * num_heads * d_kv + 3.0 * d_model * d_ff);
  check(weights <= static_cast<double>(l.parameters), "config: about ", weights,
        " weights, above the limit ", l.parameters,
        " (d_model, d_ff, num_heads x d_kv, vocab_size and the layers together)");
  check(dropout_rate >= 0 && dropout_rate < 1,
        "config field \"dropout_rate\" must be in [0, 1), got ", dropout_rate);
  check(layer_norm_epsilon > 0, "config field \"layer_norm_epsilon\" must be positive");
  const std::string act = activation();
  check(act == "relu" || act == "gelu" || act == "gelu_new" || act == "silu",
        "config field \"feed_forward_proj\": expected relu, gelu, gated-gelu, gated-relu, silu or "
        "gated-silu, got \"",
        feed_forward_proj, "\"");
  for (int64_t id : {pad_token_id, eos_token_id, decoder_start_token_id})
    check(id >= 0 && id < vocab_size, "config: special token id ", id,
          " is outside the vocabulary");
}

T5Config t5_config_from_json(const nlohmann::json& j, const std::string& source) {
  check(j.is_object(), source, ": expected a JSON object");
  // The type first: another architecture's config fails here, by name, not on a missing field.
  if (j.contains("model_type") && !j.at("model_type").is_null()) {
    const std::string type = read_field<std::string>(j, "model_type", source);
    check_model_type(type, source);
  }
  T5Config c;
#define COMPACTER_READ_FIELD(type, name, def, required, help)                      \
  if (j.contains(#name) && !j.at(#name).is_null()) {                               \
    c.name = read_field<type>(j, #name, source);                                   \
  } else if (required) {                                                           \
    throw Error(cat(source, ": missing required field \"" #name "\" (" help ")")); \
  }
  COMPACTER_T5_CONFIG_FIELDS(COMPACTER_READ_FIELD)
#undef COMPACTER_READ_FIELD
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(cat(source, ": ", e.what()));
  }
  return c;
}

T5Config load_t5_config(const std::string& path) {
  return t5_config_from_json(read_json_document(path), path);
}

nlohmann::json t5_config_to_json(const T5Config& c) {
  nlohmann::json j;
  j["architectures"] = {architecture(c.model_type)};
  j["is_encoder_decoder"] = true;
#define COMPACTER_WRITE_FIELD(type, name, def, required, help) j[#name] = c.name;
  COMPACTER_T5_CONFIG_FIELDS(COMPACTER_WRITE_FIELD)
#undef COMPACTER_WRITE_FIELD
  j["num_decoder_layers"] = c.decoder_layers();
  j["is_gated_act"] = c.is_gated();
  j["dense_act_fn"] = c.activation();
  return j;
}

namespace {

T5Config make(int64_t d_model, int64_t d_ff, int64_t d_kv, int64_t heads, int64_t layers,
              bool v11) {
  T5Config c;
  c.vocab_size = 32128;
  c.d_model = d_model;
  c.d_ff = d_ff;
  c.d_kv = d_kv;
  c.num_heads = heads;
  c.num_layers = layers;
  c.num_decoder_layers = layers;
  if (v11) {
    c.feed_forward_proj = "gated-gelu";
    c.tie_word_embeddings = false;
  }
  return c;
}

// From the published config.json files of the Hugging Face hub, in the order they are listed.
const std::vector<std::pair<std::string, T5Config>>& builtins() {
  static const std::vector<std::pair<std::string, T5Config>> table = {
      {"t5-small", make(512, 2048, 64, 8, 6, false)},
      {"t5-base", make(768, 3072, 64, 12, 12, false)},
      {"t5-large", make(1024, 4096, 64, 16, 24, false)},
      {"t5-3b", make(1024, 16384, 128, 32, 24, false)},
      {"t5-11b", make(1024, 65536, 128, 128, 24, false)},
      {"t5-v1_1-small", make(512, 1024, 64, 6, 8, true)},
      {"t5-v1_1-base", make(768, 2048, 64, 12, 12, true)},
  };
  return table;
}

}  // namespace

std::string builtin_t5_config_names() {
  std::string names;
  for (const auto& [name, config] : builtins()) names += (names.empty() ? "" : ", ") + name;
  return names;
}

T5Config builtin_t5_config(const std::string& name) {
  const std::string key = name.rfind("google/", 0) == 0 ? name.substr(7) : name;
  for (const auto& [known, config] : builtins())
    if (known == key) return config;
  throw Error(cat("unknown model config \"", name, "\"; built-in names: ",
                  builtin_t5_config_names(), " (or give a directory holding config.json)"));
}

T5Config resolve_t5_config(const std::string& name_or_path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(name_or_path)) return load_t5_config(name_or_path + "/config.json");
  if (fs::is_regular_file(name_or_path)) return load_t5_config(name_or_path);
  return builtin_t5_config(name_or_path);
}

}  // namespace compacter

// Fuzz target for a model folder's JSON settings: config.json (io/t5_config.h,
// t5_config_from_json with T5Config::validate and its size limits) and generation_config.json
// (train/decoding/generation_config.h, apply_generation_json with GenerationConfig::validate).
// An input that is JSON goes through both readers; accepted means the reader its keys point to
// took it (config.json's when it has d_model, model_type or vocab_size; else
// generation_config.json's, which ignores keys it does not know). Beyond
// "accepted or compacter::Error": an accepted config stays within T5ConfigLimits and its special
// ids inside the vocabulary; an accepted generation config has a positive length limit and
// parseable bad words.
#include <nlohmann/json.hpp>

#include "compacter/core/error.h"
#include "compacter/io/t5_config.h"
#include "compacter/train/decoding/generation_config.h"
#include "fuzz_target.h"

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data, data + size);
  } catch (const nlohmann::json::exception&) {  // parse_error; out_of_range for 1e999
    return false;  // the files' readers refuse it before these functions see it
  }
  const bool model_config = j.is_object() && (j.contains("d_model") || j.contains("model_type") ||
                                              j.contains("vocab_size"));
  bool config_accepted = false, generation_accepted = false;
  compacter::T5Config model;
  try {
    model = compacter::t5_config_from_json(j, "config.json");
    const compacter::T5ConfigLimits l;
    if (model.vocab_size > l.vocab_size || model.d_model > l.width || model.d_ff > l.width ||
        model.num_layers > l.layers || model.decoder_layers() > l.layers ||
        model.num_heads > l.heads || model.d_kv > l.width || model.eos_token_id >= model.vocab_size)
      __builtin_trap();
    config_accepted = true;
  } catch (const compacter::Error&) {
    model = compacter::T5Config{};
  }
  try {
    compacter::decoding::GenerationConfig g = compacter::decoding::from_model_config(model);
    compacter::decoding::apply_generation_json(j, "generation_config.json", g);
    if (g.new_token_limit() < 1) __builtin_trap();
    g.bad_words();
    generation_accepted = true;
  } catch (const compacter::Error&) {
  }
  return model_config ? config_accepted : generation_accepted;
}

COMPACTER_FUZZ_ENTRY_POINT

// GenerationConfig: defaults from the model config, generation_config.json, and the checks that
// transformers' GenerationConfig.validate, _validate_generated_length and its logits processors
// make (5.x).
#include "compacter/train/decoding/generation_config.h"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <set>

#include "compacter/core/error.h"
#include "compacter/core/json_file.h"

namespace compacter::decoding {

namespace {

[[noreturn]] void fail(bool usage, const std::string& message) {
  if (usage) throw UsageError(message);
  throw Error(message);
}

// Parses bad_words_ids text (JSON [[id, ...], ...]); throws std::string with the reason.
std::vector<std::vector<int64_t>> parse_bad_words(const std::string& text) {
  std::vector<std::vector<int64_t>> out;
  if (text.empty()) return out;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw std::string("is not JSON (expected [[id, ...], ...])");
  }
  if (!j.is_array() || j.empty())
    throw std::string("must be a non-empty list of lists of token ids");
  for (const auto& seq : j) {
    if (!seq.is_array() || seq.empty())
      throw std::string("must be a list of non-empty lists of token ids");
    std::vector<int64_t> ids;
    for (const auto& id : seq) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0)
        throw std::string("holds ") + id.dump() + ", not a token id (an integer >= 0)";
      ids.push_back(id.get<int64_t>());
    }
    out.push_back(std::move(ids));
  }
  return out;
}

}  // namespace

GenerationConfig GenerationConfig::resolved(const T5Config& model) const {
  GenerationConfig c = *this;
  if (c.eos_token_id < 0) c.eos_token_id = model.eos_token_id;
  if (c.pad_token_id < 0) c.pad_token_id = model.pad_token_id;
  if (c.decoder_start_token_id < 0) c.decoder_start_token_id = model.decoder_start_token_id;
  return c;
}

int64_t GenerationConfig::new_token_limit() const {
  if (max_new_tokens >= 0) return max_new_tokens;
  if (max_length >= 0) return std::max<int64_t>(0, max_length - 1);
  return 20;  // transformers 5.x: neither set
}

std::vector<std::vector<int64_t>> GenerationConfig::bad_words() const {
  try {
    return parse_bad_words(bad_words_ids);
  } catch (const std::string& why) {
    throw UsageError(cat("generation option \"bad_words_ids\" ", why));
  }
}

void GenerationConfig::validate(const std::string& source, bool usage) const {
  auto bad = [&](const char* field, const std::string& why) {
    fail(usage, cat(source, ": generation option \"", field, "\" ", why));
  };
  if (max_new_tokens == 0 || max_new_tokens < -1)
    bad("max_new_tokens", cat("must be >= 1 (or -1: unset), got ", max_new_tokens));
  if (max_length == 0 || max_length == 1 || max_length < -1)
    bad("max_length",
        cat("must be >= 2, the decoder start token and one new token (or -1: unset), got ",
            max_length));
  if (min_new_tokens < -1)
    bad("min_new_tokens", cat("must be >= 0 (or -1: unset), got ", min_new_tokens));
  if (min_length < 0) bad("min_length", cat("must be >= 0, got ", min_length));
  if (num_beams < 1) bad("num_beams", cat("must be >= 1, got ", num_beams));
  if (!std::isfinite(length_penalty)) bad("length_penalty", "must be a finite number");
  if (early_stopping != "true" && early_stopping != "false" && early_stopping != "never")
    bad("early_stopping", cat("must be true, false or never, got \"", early_stopping, "\""));
  if (num_return_sequences < 1)
    bad("num_return_sequences", cat("must be >= 1, got ", num_return_sequences));
  if (num_beams == 1 && !do_sample && num_return_sequences > 1)
    bad("num_return_sequences",
        cat("is ", num_return_sequences,
            ", but greedy search returns one sequence per input (use num_beams > 1 or do_sample)"));
  if (num_beams > 1 && num_return_sequences > num_beams)
    bad("num_return_sequences",
        cat("(", num_return_sequences, ") must not exceed num_beams (", num_beams, ")"));
  if (no_repeat_ngram_size < 0)
    bad("no_repeat_ngram_size", cat("must be >= 0, got ", no_repeat_ngram_size));
  if (!(repetition_penalty > 0.0) || !std::isfinite(repetition_penalty))
    bad("repetition_penalty", cat("must be a positive number, got ", repetition_penalty));
  try {
    parse_bad_words(bad_words_ids);
  } catch (const std::string& why) {
    bad("bad_words_ids", why);
  }
  for (auto [field, id] : {std::pair<const char*, int64_t>{"eos_token_id", eos_token_id},
                           {"pad_token_id", pad_token_id},
                           {"decoder_start_token_id", decoder_start_token_id}})
    if (id < -1) bad(field, cat("must be a token id (>= 0, or -1: the model's), got ", id));
  if (do_sample && num_beams > 1)
    bad("do_sample", "with num_beams > 1 (beam sampling) is not supported: use one of the two");
  // The warpers transformers builds only when sampling, and checks there.
  if (do_sample) {
    if (!(temperature > 0.0) || !std::isfinite(temperature))
      bad("temperature", cat("must be a strictly positive number, got ", temperature));
    if (top_k < 0) bad("top_k", cat("must be >= 0 (0: off), got ", top_k));
    // transformers builds these two only below 1 (1 and above: off) and checks them there.
    if (!(top_p >= 0.0)) bad("top_p", cat("must be in [0, 1] (1 or more: off), got ", top_p));
    if (!(typical_p > 0.0))
      bad("typical_p", cat("must be in (0, 1) (1 or more: off), got ", typical_p));
  }
}

GenerationConfig from_model_config(const T5Config& model) {
  GenerationConfig c;
  c.eos_token_id = model.eos_token_id;
  c.pad_token_id = model.pad_token_id;
  c.decoder_start_token_id = model.decoder_start_token_id;
  return c;
}

void apply_generation_json(const nlohmann::json& j, const std::string& source,
                           GenerationConfig& config) {
  check(j.is_object(), source, ": expected a JSON object");
  auto wrong = [&](const std::string& key, const std::string& expected) {
    throw Error(cat(source, ": \"", key, "\" must be ", expected, ", got ", j.at(key).dump()));
  };
  // Fields that change decoding in transformers and are not implemented here: each must be
  // absent, null or its neutral value.
  static const std::vector<std::pair<const char*, nlohmann::json>> neutral = {
      {"num_beam_groups", 1},
      {"diversity_penalty", 0.0},
      {"penalty_alpha", nullptr},
      {"encoder_repetition_penalty", 1.0},
      {"encoder_no_repeat_ngram_size", 0},
      {"forced_bos_token_id", nullptr},
      {"forced_eos_token_id", nullptr},
      {"forced_decoder_ids", nullptr},
      {"suppress_tokens", nullptr},
      {"begin_suppress_tokens", nullptr},
      {"sequence_bias", nullptr},
      {"guidance_scale", 1.0},
      {"exponential_decay_length_penalty", nullptr},
      {"epsilon_cutoff", 0.0},
      {"eta_cutoff", 0.0},
      {"min_p", nullptr},
      {"force_words_ids", nullptr},
      {"constraints", nullptr},
      {"renormalize_logits", false},
      {"remove_invalid_values", false},
      {"dola_layers", nullptr},
      {"max_time", nullptr},
      {"stop_strings", nullptr},
      {"watermarking_config", nullptr},
      {"prompt_lookup_num_tokens", nullptr},
      {"token_healing", false},
      {"top_h", nullptr},
      {"use_mtp", false}};
  for (const auto& [key, value] : neutral) {
    if (!j.contains(key) || j.at(key).is_null() || j.at(key) == value) continue;
    throw Error(cat(source, ": \"", key, "\" is ", j.at(key).dump(),
                    "; compacter's decoding supports only ", value.dump(),
                    " (transformers' default)"));
  }
  config.for_each([&](const char* name, auto& field, const char*) {
    if (!j.contains(name) || j.at(name).is_null()) return;
    const nlohmann::json& v = j.at(name);
    using T = std::decay_t<decltype(field)>;
    const std::string key = name;
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) wrong(key, "true or false");
      field = v.get<bool>();
    } else if constexpr (std::is_same_v<T, int64_t>) {
      if (key == "eos_token_id" && v.is_array()) {
        if (v.size() != 1 || !v[0].is_number_integer())
          wrong(key, "one token id (several end-of-sequence ids are not supported)");
        field = v[0].get<int64_t>();
        return;
      }
      if (!v.is_number_integer() ||
          (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)))
        wrong(key, "an integer (at most 2^63 - 1)");  // above: it would wrap around
      field = v.get<int64_t>();
    } else if constexpr (std::is_same_v<T, uint64_t>) {
      if (!v.is_number_unsigned()) wrong(key, "an integer >= 0");
      field = v.get<uint64_t>();
    } else if constexpr (std::is_same_v<T, double>) {
      if (!v.is_number()) wrong(key, "a number");
      field = v.get<double>();
    } else {
      if (key == "early_stopping") {
        if (v.is_boolean())
          field = v.get<bool>() ? "true" : "false";
        else if (v == "never")
          field = "never";
        else
          wrong(key, "true, false or \"never\"");
      } else if (key == "bad_words_ids") {
        if (!v.is_array()) wrong(key, "a list of lists of token ids");
        field = v.dump();
      } else {
        if (!v.is_string()) wrong(key, "a string");
        field = v.get<std::string>();
      }
    }
  });
  config.validate(source, false);
}

GenerationConfig load_generation_config(const std::string& dir, const T5Config& model) {
  GenerationConfig c = from_model_config(model);
  const std::filesystem::path path = std::filesystem::path(dir) / "generation_config.json";
  if (dir.empty() || !std::filesystem::is_regular_file(path)) return c;
  apply_generation_json(read_json_document(path.string()), path.string(), c);
  return c;
}

}  // namespace compacter::decoding

// The decoding settings of transformers' GenerationConfig for encoder-decoder models, with its
// field names and defaults (transformers 4.3x, generation/configuration_utils.py), declared once
// (core/options.h) so that the command-line flags and the JSON come from the same list.
//
// Layering, as transformers does it: the defaults below, with the special ids from the model's
// config.json (GenerationConfig.from_model_config), then the model folder's
// generation_config.json when present, then what a call or a command line sets.
//
// Length, as transformers 5.x's generate (_prepare_generated_length): max_new_tokens when set;
// else max_length, which counts the decoder start token (max_length 20 is 19 new tokens); else,
// neither set, 20 new tokens (transformers 4.3x gave 19: its max_length defaulted to 20).
// min_length likewise counts the start token; min_new_tokens, when set, replaces it
// (min_length = min_new_tokens + 1).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "compacter/core/options.h"
#include "compacter/io/t5_config.h"

namespace compacter::decoding {

// X(type, name, default, help). -1 for an id: the model config's.
#define COMPACTER_GENERATION_OPTIONS(X)                                                           \
  X(int64_t, max_new_tokens, -1,                                                                  \
    "tokens generated at most (>= 1); -1: max_length - 1, or 20 when max_length is unset too")    \
  X(int64_t, max_length, -1,                                                                      \
    "generated tokens + the decoder start token, at most (>= 2; -1: unset)")                      \
  X(int64_t, min_new_tokens, -1,                                                                  \
    "</s> is forbidden before this many new tokens; when set (>= 0) it replaces min_length")      \
  X(int64_t, min_length, 0, "</s> is forbidden while new tokens + 1 (the start token) < this")    \
  X(int64_t, num_beams, 1, "beams (1: greedy search, or sampling with --do-sample)")              \
  X(double, length_penalty, 1.0,                                                                  \
    "beam search: a finished sequence scores sum(logprobs) / length^length_penalty (length: new " \
    "tokens, </s> included)")                                                                     \
  X(std::string, early_stopping, "false",                                                         \
    "beam search: true (stop at num_beams finished), false (stop when no running beam is likely " \
    "to do better), never (only when none can)")                                                  \
  X(int64_t, num_return_sequences, 1, "sequences returned per input (<= num_beams; samples)")     \
  X(int64_t, no_repeat_ngram_size, 0, "n > 0: no n-gram of the decoder input occurs twice")       \
  X(double, repetition_penalty, 1.0,                                                              \
    "scores of tokens already in the decoder input: divided by this (positive) or multiplied "    \
    "(negative)")                                                                                 \
  X(std::string, bad_words_ids, "",                                                               \
    "token id sequences never generated, as JSON: [[id, ...], ...] (empty: none)")                \
  X(int64_t, eos_token_id, -1, "end-of-sequence id (-1: the model's)")                            \
  X(int64_t, pad_token_id, -1, "padding id after </s> (-1: the model's)")                         \
  X(int64_t, decoder_start_token_id, -1, "first decoder input id (-1: the model's)")              \
  X(bool, do_sample, false, "sample instead of searching")                                        \
  X(double, temperature, 1.0, "sampling: logits divided by this (> 0)")                           \
  X(int64_t, top_k, 50, "sampling: keep the k most likely tokens (0: all)")                       \
  X(double, top_p, 1.0, "sampling: keep the most likely tokens whose mass reaches p (1: all)")    \
  X(double, typical_p, 1.0, "sampling: locally typical sampling's mass (1: off)")                 \
  X(uint64_t, seed, 0, "sampling: the seed of the random draws (a run repeats with the same)")    \
  X(bool, output_scores, false, "also report every token's log-probability")

struct GenerationConfig {
  COMPACTER_OPTIONS_BODY(COMPACTER_GENERATION_OPTIONS)

  // The ids -1 replaced by the model's (from_model_config).
  GenerationConfig resolved(const T5Config& model) const;
  // New tokens at most: max_new_tokens when set, else max_length - 1 when set, else 20.
  int64_t new_token_limit() const;
  // Greedy search, beam search or sampling (transformers' generation mode).
  bool is_beam_search() const { return num_beams > 1; }
  // bad_words_ids parsed (validate() checks it).
  std::vector<std::vector<int64_t>> bad_words() const;

  // Throws for a value transformers refuses (or that is not supported here), naming `source`
  // (the file or "--flags") and the field: UsageError when `usage`, else Error.
  void validate(const std::string& source, bool usage) const;
};

// transformers' GenerationConfig defaults with the model's special ids.
GenerationConfig from_model_config(const T5Config& model);

// Applies a generation_config.json object (transformers' format: null means unset; eos_token_id
// may be a list of one id; early_stopping true, false or "never"; bad_words_ids a list of lists)
// to `config`. Keys transformers writes that do not change decoding are ignored; a field that
// would change it and is not supported here (num_beam_groups, diversity_penalty, forced ids,
// suppress_tokens, ...) must have its neutral value. Errors name `source` and the field.
void apply_generation_json(const nlohmann::json& j, const std::string& source,
                           GenerationConfig& config);

// `dir`/generation_config.json applied to from_model_config(model) when the file exists.
GenerationConfig load_generation_config(const std::string& dir, const T5Config& model);

}  // namespace compacter::decoding

// The decoding flags (one per GenerationConfig field, train/decoding/generation_config.h, so
// declared once) shared by generate, predict, serve and eval, and the JSON of a generated
// sequence that --output-json prints.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <string>

#include "compacter/train/decoding/decode.h"
#include "option_flags.h"

namespace compacter::cli {

struct DecodingFlags {
  decoding::GenerationConfig values;  // what the flags hold (their defaults shown in --help)
  GivenFlags given;
};

// --num-beams, --do-sample, --temperature, ... under "Decoding" (max_new_tokens and max_length
// are left to the command's own --max-new-tokens). Flags for true/false settings are switches
// (--do-sample, or --do-sample=false).
void add_decoding_flags(CLI::App& cmd, DecodingFlags& flags);

// `base` (the model's settings, or transformers' defaults) with the flags the user gave;
// UsageError for a bad combination (named by its field).
decoding::GenerationConfig with_decoding_flags(const DecodingFlags& flags,
                                               decoding::GenerationConfig base);

// {"text", "score", "logprob_sum", "tokens", "finished"(, "token_logprobs" when asked)}.
nlohmann::json sequence_json(const std::string& text, const decoding::Sequence& s,
                             bool token_logprobs);

}  // namespace compacter::cli

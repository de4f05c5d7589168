// Decoding flags generated from GenerationConfig's field list, and a sequence's JSON.
#include "decoding_options.h"

#include <set>
#include <type_traits>

#include "compacter/core/error.h"

namespace compacter::cli {

void add_decoding_flags(CLI::App& cmd, DecodingFlags& flags) {
  static const std::set<std::string> skip = {"max_new_tokens", "max_length"};
  flags.values.for_each([&](const char* name, auto& field, const char* help) {
    if (skip.count(name)) return;
    CLI::Option* opt;
    if constexpr (std::is_same_v<std::decay_t<decltype(field)>, bool>) {
      opt = cmd.add_flag(flag_name(name), field, help);
    } else {
      opt = cmd.add_option(flag_name(name), field, help)->capture_default_str();
    }
    opt->group("Decoding (transformers' GenerationConfig)");
    if (std::string(name) == "early_stopping")
      opt->check(CLI::IsMember({"true", "false", "never"}));
    flags.given[name] = opt;
  });
}

decoding::GenerationConfig with_decoding_flags(const DecodingFlags& flags,
                                               decoding::GenerationConfig base) {
  apply_given_flags(flags.values, flags.given, base);
  try {
    base.validate("decoding settings", true);
  } catch (const UsageError& e) {
    // Name the flag: generation option "num_beams" -> --num-beams.
    std::string message = e.what();
    for (const std::string& name : options::names<decoding::GenerationConfig>()) {
      const std::string field = "generation option \"" + name + "\"";
      const size_t at = message.find(field);
      if (at != std::string::npos) message.replace(at, field.size(), flag_name(name));
    }
    throw UsageError(message);
  }
  return base;
}

nlohmann::json sequence_json(const std::string& text, const decoding::Sequence& s,
                             bool token_logprobs) {
  nlohmann::json j = {{"text", text},
                      {"score", s.score},
                      {"logprob_sum", s.logprob_sum},
                      {"tokens", s.tokens},
                      {"finished", s.finished}};
  if (token_logprobs) j["token_logprobs"] = s.token_logprobs;
  return j;
}

}  // namespace compacter::cli

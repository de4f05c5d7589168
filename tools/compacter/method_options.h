// Command-line options of the fine-tuning methods: --method, one flag per COMPACTER_PEFT_OPTIONS
// field (--reduction-factor, --n, --shared-phm-rule, ...), --init-seed and --adapter DIR.
// The method's paper defaults apply first, then a JSON config's "method_options", then the flags
// the user gave.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "compacter/nn/t5.h"
#include "compacter/peft/methods.h"

namespace compacter::cli {

struct MethodOptions {
  std::string method;
  std::string adapter_dir;
  uint64_t init_seed = 0;
  peft::PeftOptions values;
  std::vector<std::pair<std::string, CLI::Option*>> given;  // filled by add_method_options
};

// with_adapter: also --adapter DIR (load a saved adapter instead of a fresh method).
void add_method_options(CLI::App& cmd, MethodOptions& m, bool with_adapter);

// The options for m.method: its defaults, then `config` (an object of option names, may be
// null), then the flags given on the command line.
peft::PeftOptions resolve_peft_options(const MethodOptions& m,
                                       const nlohmann::json& config = nlohmann::json());

// Loads --adapter or attaches --method (fresh init from --init-seed); nothing when neither.
std::optional<peft::Attachment> apply_method(const MethodOptions& m, nn::T5ModelImpl& model);

}  // namespace compacter::cli

// The adapter_config.json files `compacter import` reads, parsed on their own: without the
// tensors beside them or a base model (torch-free, so that fuzz/peft_config_fuzz.cpp and
// fuzz/adapterhub_config_fuzz.cpp can feed them any text). The importers (peft_format.cpp,
// adapterhub_format.cpp) parse the config first, then read the tensors and check them, the
// shapes and the module paths against the base model. What each field means and why a value is
// refused: peft_format.h and adapterhub_format.h; every key: docs/interop.md.
// Every refusal is a compacter::Error naming the file (`path`) and the key.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compacter/interop/python_regex.h"

namespace compacter::interop {

// The JSON object in `text` (Error naming `path`: not valid JSON, not an object).
nlohmann::json json_object_from_text(const std::string& text, const std::string& path);

// Bounds that keep sizes computed from a config finite (each far above any T5's).
constexpr int64_t kMaxPeftVirtualTokens = int64_t{1} << 20;   // num_virtual_tokens
constexpr int64_t kMaxHubReductionFactor = int64_t{1} << 20;  // reduction_factor
constexpr int64_t kMaxHubPhmDim = int64_t{1} << 20;           // phm_dim, phm_rank
constexpr size_t kMaxPeftRegexLength = 1024;                  // feedforward_modules as a regex
constexpr size_t kMaxPeftRegexStates = 1024;  // the same, its automaton's states (python_regex.h)

// PEFT's adapter_config.json (LoraConfig / IA3Config / PromptTuningConfig).
struct PeftImportConfig {
  std::string path;                        // the file, for messages
  std::string peft_type;                   // "LORA", "IA3" or "PROMPT_TUNING"
  std::string method;                      // ours: "lora", "ia3", "prompt-r" or "prompt-t"
  nlohmann::json base_model_name_or_path;  // null when absent

  // LORA: our rank, lora_alpha (use_rslora's lora_alpha / sqrt(r) rewritten as ours, lora_alpha
  // / r) and lora_dropout in [0, 1).
  int64_t rank = 0;
  double lora_alpha = 8.0;
  double lora_dropout = 0.0;

  // IA3: feedforward_modules, absent (PEFT's default for the model type), a regular expression
  // that must match a whole module path, or names one of which must end it.
  bool feedforward_given = false;
  std::optional<PythonRegex> feedforward_regex;  // Python's re syntax, as PEFT reads it
  std::vector<std::string> feedforward_names;

  // PROMPT_TUNING: the encoder's prompt rows, and how many blocks of them the tensor holds
  // (num_transformer_submodules, 1 or 2); token_dim as given (null when absent).
  int64_t num_virtual_tokens = 0;
  int64_t transformer_submodules = 2;
  nlohmann::json token_dim;

  std::vector<std::string> notes;  // what the import reports (a rewritten value, dropped rows)

  // Whether PEFT's IA3 treats `module_path` as a feed-forward module (scaling its input), as
  // IA3Model's _check_target_module_feedforward decides; absent, PEFT's default for
  // `model_type` (t5: wo).
  bool feedforward(const std::string& module_path, const std::string& model_type) const;
};

PeftImportConfig peft_import_config(const nlohmann::json& j, const std::string& path);
PeftImportConfig peft_import_config_from_text(const std::string& text, const std::string& path);

// The `adapters` library's (AdapterHub's) adapter_config.json: a BnConfig under "config".
struct AdapterHubImportConfig {
  std::string path;
  std::string method;          // ours: adapter, pfeiffer, phm, compacter or compacter++
  std::string name;            // "name" when a string, else ""
  nlohmann::json model_name;   // null when absent
  nlohmann::json hidden_size;  // an integer, or null when absent or not an integer
  int64_t reduction_factor = 0;
  std::string non_linearity = "relu";  // lower-cased
  bool layer_norm_before = false, layer_norm_after = false;
  // PHM layers (methods phm, compacter, compacter++) only.
  bool phm = false;
  int64_t phm_dim = 4, phm_rank = 1;
  bool shared_phm_rule = false, factorized_phm = false;
  std::optional<std::string> phm_c_init;
  std::optional<double> phm_init_range;
  std::optional<std::string> weight_init;  // hypercomplex_nonlinearity other than "phm"
  std::vector<std::string> notes;          // what the import reports (a dropped dropout, ...)
};

AdapterHubImportConfig adapterhub_import_config(const nlohmann::json& j, const std::string& path);
AdapterHubImportConfig adapterhub_import_config_from_text(const std::string& text,
                                                          const std::string& path);

}  // namespace compacter::interop

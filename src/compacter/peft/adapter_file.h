// Adapter directories: what a fine-tuning run keeps, to be served on top of a shared base model.
//   adapter_config.json        {"format": "compacter-adapter", "format_version": 1, "method",
//                               "seed", "options": {every COMPACTER_PEFT_OPTIONS field},
//                               "base_model": {the T5 shape it was trained on},
//                               "base": {BaseIdentity: name, weights and tokenizer fingerprints},
//                               "task", "inputs" (tasks/inputs.h), "command", ...extra}
//   adapter_model.safetensors  the method's trainable tensors only, by their names in the model
//                               (docs/adapter-format.md lists them), F32.
//   README.md                  a card for people: method, task, base, parameters, scores, the
//                               command that made it (peft/adapter_card.h)
// Loading attaches the method with the saved options and seed (so anything not saved, such as
// SAID's random constants, is drawn again identically) and copies the tensors in.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "compacter/core/progress.h"
#include "compacter/nn/t5.h"
#include "compacter/peft/methods.h"

namespace compacter::peft {

constexpr int kAdapterFormatVersion = 1;
constexpr const char* kAdapterConfigFile = "adapter_config.json";
constexpr const char* kAdapterWeightsFile = "adapter_model.safetensors";

nlohmann::json options_to_json(const PeftOptions& options);
// Strict: unknown keys and wrong types are errors naming `source` and the key; missing keys keep
// the values already in `options`.
void options_from_json(const nlohmann::json& j, const std::string& source, PeftOptions& options);

// The base-model shape recorded with an adapter (and checked when it is loaded).
nlohmann::json base_shape(const nn::T5ModelImpl& model);

// Which base model an adapter belongs to. An adapter on another checkpoint of the same shape
// (t5-v1_1-base and flan-t5-base, say) loads without complaint and answers nonsense, so the
// identity is recorded when the adapter is saved and checked when it is loaded.
struct BaseIdentity {
  std::string name;         // config.json's "_name_or_path", or the model folder's name
  std::string fingerprint;  // nn::weights_fingerprint of the weights as loaded
  std::string tokenizer;    // the tokenizer's fingerprint (core/fingerprint.h of its file)
};
nlohmann::json base_identity_to_json(const BaseIdentity& base);

// What load_adapter checks beyond the shape.
struct AdapterLoadOptions {
  const BaseIdentity* base = nullptr;  // when given: the adapter's recorded base must be this one
  bool allow_base_mismatch = false;    // load onto another base anyway, with a warning
  ProgressSink* progress = nullptr;    // warnings (an adapter older than the record, a mismatch)
};

// Compares an adapter's recorded base with `base`: an Error naming both (and how to override)
// when they differ and !allow_mismatch; otherwise the warnings to show (empty when they match).
std::vector<std::string> check_adapter_base(const nlohmann::json& adapter_config,
                                            const std::string& dir, const BaseIdentity& base,
                                            bool allow_mismatch);

struct AdapterSpec {
  std::string method;
  PeftOptions options;
  uint64_t seed = 0;
};

// Writes dir/adapter_model.safetensors and dir/adapter_config.json (each atomically; the
// directory is created). `extra` fields are added to the config (e.g. the task).
void save_adapter(nn::T5ModelImpl& model, const AdapterSpec& spec, const std::string& dir,
                  const nlohmann::json& extra = nlohmann::json::object());

// Reads dir/adapter_config.json as JSON, checking its format and version (errors name the file,
// and say "did you mean DIR/best_adapter" for a run directory).
nlohmann::json read_adapter_config(const std::string& dir);
// Reads and validates dir/adapter_config.json (format, version, method, options).
AdapterSpec read_adapter_spec(const std::string& dir);

// Attaches the adapter in `dir` to `model` and loads its tensors. Refuses a base of another
// shape, an unknown method, a newer format and missing / extra / misshapen tensors.
// With options.base, also refuses (or warns about) an adapter trained on another base.
Attachment load_adapter(nn::T5ModelImpl& model, const std::string& dir,
                        const AdapterLoadOptions& options = {});

// Loads the tensors of the adapter in `dir` into a model that already has the same method
// attached (e.g. the best adapter of a run back into the trained model). Each tensor gets new
// storage holding the loaded values (set_data) instead of being written into, so a model whose
// base tensors are shared with others (nn::share_weights) leaves theirs intact even when the
// adapter holds base tensors (layer norms, or every tensor for `full`).
void load_adapter_tensors(nn::T5ModelImpl& model, const std::string& dir);

}  // namespace compacter::peft

// Adapter directories: what a fine-tuning run keeps, to be served on top of a shared base model.
//   adapter_config.json        {"format": "compacter-adapter", "format_version": 1, "method",
//                               "seed", "options": {every COMPACTER_PEFT_OPTIONS field},
//                               "base_model": {the T5 shape it was trained on}, ...extra}
//   adapter_model.safetensors  the method's trainable tensors only, by their names in the model
//                               (docs/adapter-format.md lists them), F32.
// Loading attaches the method with the saved options and seed (so anything not saved, such as
// SAID's random constants, is drawn again identically) and copies the tensors in.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

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

struct AdapterSpec {
  std::string method;
  PeftOptions options;
  uint64_t seed = 0;
};

// Writes dir/adapter_model.safetensors and dir/adapter_config.json (each atomically; the
// directory is created). `extra` fields are added to the config (e.g. the task).
void save_adapter(nn::T5ModelImpl& model, const AdapterSpec& spec, const std::string& dir,
                  const nlohmann::json& extra = nlohmann::json::object());

// Reads and validates dir/adapter_config.json (format, version, method, options).
AdapterSpec read_adapter_spec(const std::string& dir);

// Attaches the adapter in `dir` to `model` and loads its tensors. Refuses a base of another
// shape, an unknown method, a newer format and missing / extra / misshapen tensors.
Attachment load_adapter(nn::T5ModelImpl& model, const std::string& dir);

// Loads the tensors of the adapter in `dir` into a model that already has the same method
// attached (e.g. the best adapter of a run back into the trained model). Each tensor gets new
// storage holding the loaded values (set_data) instead of being written into, so a model whose
// base tensors are shared with others (nn::share_weights) leaves theirs intact even when the
// adapter holds base tensors (layer norms, or every tensor for `full`).
void load_adapter_tensors(nn::T5ModelImpl& model, const std::string& dir);

}  // namespace compacter::peft

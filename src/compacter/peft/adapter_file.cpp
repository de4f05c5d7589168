// Saving and loading adapter directories (issue #3; format in docs/adapter-format.md).
#include "compacter/peft/adapter_file.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/core/fingerprint.h"
#include "compacter/core/json_file.h"
#include "compacter/core/options.h"
#include "compacter/io/safetensors.h"
#include "compacter/nn/fingerprint.h"
#include "compacter/nn/int8_linear.h"
#include "compacter/peft/adapter_card.h"
#include "compacter/peft/adapter_config.h"

namespace compacter::peft {

nlohmann::json options_to_json(const PeftOptions& o) {
  return options::to_json(o);
}

void options_from_json(const nlohmann::json& j, const std::string& source, PeftOptions& o) {
  options::from_json(j, source, "method option", o);
}

nlohmann::json base_shape(const nn::T5ModelImpl& model) {
  const T5Config& c = model.config();
  return {{"vocab_rows", model.shared->weight.size(0)},
          {"d_model", c.d_model},
          {"d_kv", c.d_kv},
          {"d_ff", c.d_ff},
          {"num_layers", c.num_layers},
          {"num_decoder_layers", c.decoder_layers()},
          {"num_heads", c.num_heads},
          {"relative_attention_num_buckets", c.relative_attention_num_buckets},
          {"feed_forward_proj", c.feed_forward_proj},
          {"tie_word_embeddings", c.tie_word_embeddings}};
}

void save_adapter(nn::T5ModelImpl& model, const AdapterSpec& spec, const std::string& dir,
                  const nlohmann::json& extra) {
  std::filesystem::create_directories(dir);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& [name, t] : trainable_named_parameters(model)) tensors.emplace_back(name, t.detach());
  safetensors::save(dir + "/" + kAdapterWeightsFile, tensors,
                    {{"format", "compacter-adapter"}, {"method", spec.method}}, torch::kFloat32);
  nlohmann::json j = extra.is_object() ? extra : nlohmann::json::object();
  j["format"] = "compacter-adapter";
  j["format_version"] = kAdapterFormatVersion;
  j["library_version"] = COMPACTER_VERSION;
  j["method"] = spec.method;
  j["seed"] = spec.seed;
  j["options"] = options_to_json(spec.options);
  j["base_model"] = base_shape(model);
  // A checksum of the weights file, which has none of its own (checked by load_adapter_tensors).
  j["weights_fnv1a64"] = file_fingerprint(dir + "/" + kAdapterWeightsFile);
  write_text_atomically(dir + "/" + kAdapterConfigFile, j.dump(2) + "\n");
  int64_t parameters = 0;
  for (const auto& [name, t] : tensors) parameters += t.numel();
  write_adapter_card(dir, j, parameters, extra.value("scores", nlohmann::json()));
}

nlohmann::json read_adapter_config(const std::string& dir) {
  const std::string path = dir + "/" + kAdapterConfigFile;
  std::ifstream in(path);
  if (!in.good()) {
    namespace fs = std::filesystem;
    check(fs::exists(dir), "adapter directory not found: ", dir);
    const bool run = fs::exists(dir + "/best_adapter/" + kAdapterConfigFile);
    throw Error(cat(
        dir, " is not an adapter directory (no ", kAdapterConfigFile, ")",
        run ? cat("; it is a training run: did you mean ", dir, "/best_adapter?") : std::string()));
  }
  const nlohmann::json j = read_json_document(path);
  check_adapter_config_format(j, path);
  return j;
}

AdapterSpec read_adapter_spec(const std::string& dir) {
  const std::string path = dir + "/" + kAdapterConfigFile;
  return adapter_spec_from_config(read_adapter_config(dir), path, method_defaults);
}

nlohmann::json base_identity_to_json(const BaseIdentity& base) {
  return {{"name", base.name},
          {"weights_fingerprint", base.fingerprint},
          {"fingerprint_scheme", nn::kWeightsFingerprintScheme},
          {"tokenizer_fingerprint", base.tokenizer}};
}

std::vector<std::string> check_adapter_base(const nlohmann::json& config, const std::string& dir,
                                            const BaseIdentity& base, bool allow_mismatch) {
  const auto recorded = config.find("base");
  if (recorded == config.end() || !recorded->is_object())
    return {cat("adapter ", dir,
                " was saved before adapters recorded their base model: nothing shows that it "
                "belongs to ",
                base.name, " (retrain it, or check its results on this base)")};
  const std::string source = cat(dir, "/", kAdapterConfigFile, ": base");
  auto text = [&](const char* key) {
    const auto it = recorded->find(key);
    check(it != recorded->end() && it->is_string(), source, ": \"", key, "\" must be a string");
    return it->get<std::string>();
  };
  const std::string name = text("name"), weights = text("weights_fingerprint"),
                    scheme = text("fingerprint_scheme"), tokenizer = text("tokenizer_fingerprint");
  std::string differs;
  if (scheme == nn::kWeightsFingerprintScheme && weights != base.fingerprint)
    differs = cat("weights fingerprint ", weights, " vs ", base.fingerprint);
  else if (!base.tokenizer.empty() && tokenizer != base.tokenizer)
    differs = cat("tokenizer fingerprint ", tokenizer, " vs ", base.tokenizer);
  if (differs.empty()) return {};
  const std::string what = cat("adapter ", dir, " was trained on base model \"", name,
                               "\", not on the one given, \"", base.name, "\" (", differs, ")");
  check(allow_mismatch, what,
        ": load it with its own base model, or pass --allow-base-mismatch to use it anyway");
  return {what + "; loading it anyway (--allow-base-mismatch)"};
}

Attachment load_adapter(nn::T5ModelImpl& model, const std::string& dir,
                        const AdapterLoadOptions& options) {
  const AdapterSpec spec = read_adapter_spec(dir);
  const std::string config_path = dir + "/" + kAdapterConfigFile;
  const nlohmann::json config = read_adapter_config(dir);
  if (options.base != nullptr)
    for (const std::string& warning :
         check_adapter_base(config, dir, *options.base, options.allow_base_mismatch))
      if (options.progress != nullptr) options.progress->warning(warning);
  const nlohmann::json& stored = config["base_model"];
  const nlohmann::json have = base_shape(model);
  check(stored.is_object(), config_path, ": \"base_model\" must be an object");
  for (const auto& item : have.items()) {
    check(stored.contains(item.key()), config_path, ": base_model lacks \"", item.key(), "\"");
    check(stored[item.key()] == item.value(), "adapter ", dir, " was trained on a base model with ",
          item.key(), " = ", stored[item.key()].dump(), ", but this model has ",
          item.value().dump(),
          item.key() == "vocab_rows"
              ? cat(" (load the model with --resize-vocab ", stored[item.key()].dump(), ")")
              : std::string());
  }
  Attachment attachment = attach(spec.method, spec.options, model, spec.seed);
  load_adapter_tensors(model, dir);
  return attachment;
}

void load_adapter_tensors(nn::T5ModelImpl& model, const std::string& dir) {
  const AdapterSpec spec = read_adapter_spec(dir);
  const std::string weights = dir + "/" + kAdapterWeightsFile;
  const nlohmann::json config = read_adapter_config(dir);
  if (config.contains("weights_fnv1a64"))  // adapters written before it have none
    check(config["weights_fnv1a64"] == file_fingerprint(weights), weights,
          ": its bytes do not match the checksum in ", kAdapterConfigFile,
          " (the file is damaged: a partial copy or a flipped bit; or it was replaced: then "
          "remove \"weights_fnv1a64\" from ",
          kAdapterConfigFile, ")");
  const safetensors::File file = safetensors::File::open(weights);
  std::set<std::string> expected;
  // An int8 server's weights freed of their fp32 copy (`full` loads over them): their own shape.
  const auto freed = nn::freed_weight_shapes(model);
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : trainable_named_parameters(model)) {
    expected.insert(name);
    check(file.contains(name), weights, ": missing tensor \"", name, "\" of method ", spec.method);
    torch::Tensor value = file.load(name);
    const auto it = freed.find(name);
    const std::vector<int64_t> shape = it != freed.end() ? it->second : t.sizes().vec();
    check(value.sizes() == at::IntArrayRef(shape), weights, ": tensor \"", name, "\" has shape ",
          value.sizes(), ", expected ", at::IntArrayRef(shape));
    t.set_data(value.to(t.device(), t.scalar_type()));  // new storage: see the header
  }
  for (const auto& info : file.header().tensors)
    check(expected.count(info.name), weights, ": unexpected tensor \"", info.name,
          "\" (not trainable in method ", spec.method, ")");
}

}  // namespace compacter::peft

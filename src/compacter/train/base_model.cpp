// Base model + tokenizer loading shared by every command: see base_model.h.
#include "compacter/train/base_model.h"

#include <filesystem>

#include <fstream>

#include "compacter/core/error.h"
#include "compacter/core/fingerprint.h"
#include "compacter/nn/fingerprint.h"

namespace compacter::train {

namespace fs = std::filesystem;

namespace {

// config.json's "_name_or_path" (what transformers records: the hub name it came from), else
// the folder's own name.
std::string base_name(const std::string& dir) {
  std::ifstream in(dir + "/config.json");
  const nlohmann::json config = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (config.is_object() && config.contains("_name_or_path") &&
      config["_name_or_path"].is_string() && !config["_name_or_path"].get<std::string>().empty())
    return config["_name_or_path"].get<std::string>();
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  const std::string name = p.filename().string();
  return name.empty() || name == "." ? fs::absolute(p).lexically_normal().filename().string()
                                     : name;
}

}  // namespace

peft::AdapterLoadOptions adapter_checks(const BaseModel& base, bool allow_base_mismatch,
                                        ProgressSink& progress) {
  peft::AdapterLoadOptions o;
  o.base = &base.identity;
  o.allow_base_mismatch = allow_base_mismatch;
  o.progress = &progress;
  return o;
}

std::string tokenizer_file(const ModelSpec& spec) {
  check(fs::is_directory(spec.dir), "model folder not found: ", spec.dir,
        " (expected a Hugging Face T5 folder with config.json and model.safetensors)");
  check(fs::is_regular_file(spec.dir + "/config.json"), spec.dir,
        " is not a Hugging Face T5 folder: it has no config.json");
  if (!spec.tokenizer.empty()) {
    check(fs::is_regular_file(spec.tokenizer), "tokenizer not found: ", spec.tokenizer);
    return spec.tokenizer;
  }
  const std::string beside = spec.dir + "/spiece.model";
  check(fs::exists(beside), spec.dir, " has no spiece.model: give the tokenizer with --tokenizer");
  return beside;
}

namespace {

nn::T5Loaded load_weights(const ModelSpec& spec, int64_t vocab_rows, ProgressSink& progress) {
  nn::T5LoadOptions lo;
  lo.device = nn::parse_device(spec.device);
  lo.dtype = nn::parse_precision(spec.dtype).weights;
  lo.vocab_rows = vocab_rows;
  nn::T5Loaded loaded = nn::load_t5(spec.dir, lo);
  if (!loaded.unexpected.empty()) {
    std::string names;
    for (const auto& n : loaded.unexpected) names += " " + n;
    progress.warning(
        cat(loaded.unexpected.size(),
            " tensor(s) in the checkpoint are not part of T5 and were ignored:", names));
  }
  loaded.model->eval();
  return loaded;
}

}  // namespace

BaseModel load_base_model(const ModelSpec& spec, ProgressSink& progress) {
  const nn::Precision precision = nn::parse_precision(spec.dtype);
  const torch::Device device = nn::parse_device(spec.device);
  const std::string tokenizer_path = tokenizer_file(spec);
  T5Tokenizer tokenizer = T5Tokenizer::load(tokenizer_path);
  nn::T5Loaded loaded = load_weights(spec, spec.vocab_rows, progress);
  // The paper resizes the embedding to the tokenizer (32,128 -> 32,100 rows, spec §7.1).
  if (spec.vocab_rows <= 0 && loaded.model->shared->weight.size(0) > tokenizer.vocab_size())
    loaded.model->resize_vocab(tokenizer.vocab_size());
  peft::BaseIdentity identity{base_name(spec.dir), nn::weights_fingerprint(*loaded.model),
                              file_fingerprint(tokenizer_path)};
  return BaseModel{loaded.model, std::move(tokenizer), precision, device, std::move(identity)};
}

BaseWeights load_base_weights(const ModelSpec& spec, const std::string& adapter_dir,
                              ProgressSink& progress) {
  check(fs::is_directory(spec.dir), "model folder not found: ", spec.dir,
        " (expected a Hugging Face T5 folder with config.json and model.safetensors)");
  int64_t rows = spec.vocab_rows;
  if (rows <= 0 && !adapter_dir.empty()) {
    const nlohmann::json config = peft::read_adapter_config(adapter_dir);
    const auto shape = config.find("base_model");
    if (shape != config.end() && shape->is_object() && shape->contains("vocab_rows") &&
        (*shape)["vocab_rows"].is_number_integer())
      rows = (*shape)["vocab_rows"].get<int64_t>();
  }
  nn::T5Loaded loaded = load_weights(spec, rows, progress);
  peft::BaseIdentity identity{base_name(spec.dir), nn::weights_fingerprint(*loaded.model), ""};
  return BaseWeights{loaded.model, std::move(identity)};
}

}  // namespace compacter::train

// Base model + tokenizer loading shared by every command: see base_model.h.
#include "compacter/train/base_model.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "compacter/core/error.h"
#include "compacter/core/fingerprint.h"
#include "compacter/io/t5_config.h"
#include "compacter/nn/fingerprint.h"
#include "compacter/train/loop.h"
#include "compacter/train/tokenizer_choice.h"

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

std::string tokenizer_fingerprint(const TokenizerChoice& choice) {
  if (choice.byte_level) return cat("byte-level-", choice.extra_ids >= 0 ? choice.extra_ids : 125);
  // The default 100 sentinels keep the file's fingerprint alone (as before extra_ids was read).
  if (choice.extra_ids >= 0 && choice.extra_ids != 100)
    return cat(file_fingerprint(choice.file), "+extra_ids=", choice.extra_ids);
  return file_fingerprint(choice.file);
}

nn::T5Loaded load_weights(const ModelSpec& spec, int64_t vocab_rows, ProgressSink& progress) {
  nn::T5LoadOptions lo;
  lo.device = nn::parse_device(spec.device);
  lo.dtype = nn::parse_precision(spec.dtype).weights;
  lo.vocab_rows = vocab_rows;
  nn::T5Loaded loaded = nn::load_t5(spec.dir, lo);
  // The model is built in fp32 and then filled and cast: those copies' pages go back to the
  // system instead of staying resident in the allocator until reused.
  if (!lo.device.is_cuda()) release_free_memory();
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

peft::AdapterLoadOptions adapter_checks(const BaseModel& base, bool allow_base_mismatch,
                                        ProgressSink& progress) {
  peft::AdapterLoadOptions o;
  o.base = &base.identity;
  o.allow_base_mismatch = allow_base_mismatch;
  o.progress = &progress;
  return o;
}

std::string tokenizer_file(const ModelSpec& spec) {
  return choose_tokenizer(spec.dir, spec.tokenizer).file;
}

T5Tokenizer load_tokenizer(const ModelSpec& spec) {
  const TokenizerChoice choice = choose_tokenizer(spec.dir, spec.tokenizer);
  if (!choice.byte_level)
    return T5Tokenizer::load(choice.file, choice.extra_ids >= 0 ? choice.extra_ids : 100);
  const int64_t extra_ids = choice.extra_ids >= 0 ? choice.extra_ids : 125;
  return T5Tokenizer::byte_level(
      extra_ids, choice.file.empty() ? cat("ByT5 bytes, --tokenizer ", kByteLevelTokenizerName)
                                     : cat("ByT5 bytes, ByT5Tokenizer in ", choice.file));
}

T5Tokenizer tokenizer_from_argument(const std::string& arg) {
  if (arg == kByteLevelTokenizerName)
    return T5Tokenizer::byte_level(125, cat("ByT5 bytes, --tokenizer ", kByteLevelTokenizerName));
  if (fs::is_directory(arg)) {
    ModelSpec spec;
    spec.dir = arg;
    return load_tokenizer(spec);
  }
  check(fs::is_regular_file(arg), "--tokenizer: ", arg,
        " not found (expected a spiece.model, a model folder, or \"", kByteLevelTokenizerName,
        "\" for ByT5's UTF-8 bytes)");
  return T5Tokenizer::load(arg);
}

void check_tokenizer_fits(const T5Tokenizer& tokenizer, int64_t rows,
                          const std::string& model_config, bool rows_from_resize) {
  check(tokenizer.vocab_size() <= rows, "the tokenizer (", tokenizer.source(), ") has ",
        tokenizer.vocab_size(), " ids, more than the ", rows, " vocabulary rows of the model (",
        model_config, rows_from_resize ? ", after --resize-vocab" : "",
        "): is it this model's tokenizer? (give the right one with --tokenizer)");
}

BaseModel load_base_model(const ModelSpec& spec, ProgressSink& progress) {
  const nn::Precision precision = nn::parse_precision(spec.dtype);
  const nn::Int8Keep int8_keep =
      nn::int8_keep_for(spec.int8_keep_fp32, precision.int8, "--dtype", spec.dtype);
  const torch::Device device = nn::parse_device(spec.device);
  // The config before the tokenizer: a model of another type is refused as such (model_type).
  check_model_folder(spec.dir);
  const std::string config_file = spec.dir + "/config.json";
  const T5Config config = load_t5_config(config_file);
  decoding::GenerationConfig generation = decoding::load_generation_config(spec.dir, config);
  T5Tokenizer tokenizer = load_tokenizer(spec);
  // Checked before the weights are read: a larger tokenizer would index past the embedding.
  const int64_t rows = spec.vocab_rows > 0 ? spec.vocab_rows : config.vocab_size;
  check_tokenizer_fits(tokenizer, rows, config_file, spec.vocab_rows > 0);
  nn::T5Loaded loaded = load_weights(spec, spec.vocab_rows, progress);
  // The paper resizes the embedding to the tokenizer (32,128 -> 32,100 rows, spec §7.1).
  if (spec.vocab_rows <= 0 && loaded.model->shared->weight.size(0) > tokenizer.vocab_size())
    loaded.model->resize_vocab(tokenizer.vocab_size());
  peft::BaseIdentity identity{base_name(spec.dir), nn::weights_fingerprint(*loaded.model),
                              tokenizer_fingerprint(choose_tokenizer(spec.dir, spec.tokenizer))};
  return BaseModel{loaded.model,        std::move(tokenizer), precision, int8_keep, device,
                   std::move(identity), std::move(generation)};
}

void quantize_if_int8(const BaseModel& base, nn::T5ModelImpl& model) {
  if (!base.precision.int8) return;
  nn::quantize_linears_int8(model, nn::Fp32Weights::kFree, base.int8_keep);
  release_free_memory();
}

BaseWeights load_base_weights(const ModelSpec& spec, const std::string& adapter_dir,
                              ProgressSink& progress) {
  check_model_folder(spec.dir);
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

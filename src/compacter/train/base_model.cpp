// Base model + tokenizer loading shared by every command: see base_model.h.
#include "compacter/train/base_model.h"

#include <filesystem>

#include "compacter/core/error.h"

namespace compacter::train {

namespace fs = std::filesystem;

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

BaseModel load_base_model(const ModelSpec& spec, ProgressSink& progress) {
  const nn::Precision precision = nn::parse_precision(spec.dtype);
  const torch::Device device = nn::parse_device(spec.device);
  T5Tokenizer tokenizer = T5Tokenizer::load(tokenizer_file(spec));
  nn::T5LoadOptions lo;
  lo.device = device;
  lo.dtype = precision.weights;
  lo.vocab_rows = spec.vocab_rows;
  nn::T5Loaded loaded = nn::load_t5(spec.dir, lo);
  if (!loaded.unexpected.empty()) {
    std::string names;
    for (const auto& n : loaded.unexpected) names += " " + n;
    progress.warning(
        cat(loaded.unexpected.size(),
            " tensor(s) in the checkpoint are not part of T5 and were ignored:", names));
  }
  loaded.model->eval();
  // The paper resizes the embedding to the tokenizer (32,128 -> 32,100 rows, spec §7.1).
  if (spec.vocab_rows <= 0 && loaded.model->shared->weight.size(0) > tokenizer.vocab_size())
    loaded.model->resize_vocab(tokenizer.vocab_size());
  return BaseModel{loaded.model, std::move(tokenizer), precision, device};
}

}  // namespace compacter::train

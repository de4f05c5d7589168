// The tokenizer a model folder asks for: see tokenizer_choice.h.
#include "compacter/train/tokenizer_choice.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "compacter/core/error.h"
#include "compacter/core/json_file.h"
#include "compacter/data/tokenizer.h"

namespace compacter::train {

namespace fs = std::filesystem;

namespace {

// A JSON object file, or null when it does not exist; errors name the file.
nlohmann::json read_optional_json(const std::string& path) {
  if (!fs::exists(path)) return nullptr;
  const nlohmann::json j = read_json_document(path);
  check(j.is_object(), path, ": expected a JSON object");
  return j;
}

// The "tokenizer_class" string of a config object, or "" when absent or null.
std::string tokenizer_class(const nlohmann::json& j, const std::string& path) {
  if (j.is_null() || !j.contains("tokenizer_class") || j.at("tokenizer_class").is_null()) return "";
  check(j.at("tokenizer_class").is_string(), path,
        ": field \"tokenizer_class\": expected a string, got ", j.at("tokenizer_class").dump());
  return j.at("tokenizer_class").get<std::string>();
}

}  // namespace

void check_model_folder(const std::string& dir) {
  check(fs::is_directory(dir), "model folder not found: ", dir,
        " (expected a Hugging Face T5 folder with config.json and model.safetensors)");
  check(fs::is_regular_file(dir + "/config.json"), dir,
        " is not a Hugging Face T5 folder: it has no config.json");
}

TokenizerChoice choose_tokenizer(const std::string& dir, const std::string& tokenizer) {
  check_model_folder(dir);
  TokenizerChoice choice;
  if (tokenizer == kByteLevelTokenizerName) {
    choice.byte_level = true;
    return choice;
  }
  if (!tokenizer.empty()) {
    check(fs::is_regular_file(tokenizer), "tokenizer not found: ", tokenizer,
          " (expected a SentencePiece spiece.model, or \"", kByteLevelTokenizerName,
          "\" for the byte-level ByT5 tokenizer)");
    choice.file = tokenizer;
    return choice;
  }
  // AutoTokenizer: tokenizer_config.json's tokenizer_class, else config.json's.
  const std::string tok_config_path = dir + "/tokenizer_config.json";
  const nlohmann::json tok_config = read_optional_json(tok_config_path);
  std::string from = tok_config_path;
  std::string cls = tokenizer_class(tok_config, tok_config_path);
  if (cls.empty()) {
    from = dir + "/config.json";
    cls = tokenizer_class(read_optional_json(from), from);
  }
  if (!tok_config.is_null() && tok_config.contains("extra_ids") &&
      !tok_config.at("extra_ids").is_null()) {
    const auto& v = tok_config.at("extra_ids");
    check(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= 100000,
          tok_config_path, ": field \"extra_ids\": expected an integer from 0 to 100000, got ",
          v.dump());
    choice.extra_ids = v.get<int64_t>();
  }
  if (cls == "ByT5Tokenizer") {
    choice.byte_level = true;
    choice.file = from;
    return choice;
  }
  check(cls.empty() || cls == "T5Tokenizer" || cls == "T5TokenizerFast" || cls == "MT5Tokenizer" ||
            cls == "MT5TokenizerFast",
        "tokenizer_class \"", cls, "\" in ", from,
        ": not supported; supported: T5Tokenizer or MT5Tokenizer (spiece.model), ByT5Tokenizer "
        "(bytes); or give --tokenizer spiece.model / --tokenizer ",
        kByteLevelTokenizerName);
  const std::string beside = dir + "/spiece.model";
  check(fs::exists(beside), dir,
        " has no spiece.model: give the tokenizer with --tokenizer (a spiece.model, or \"",
        kByteLevelTokenizerName, "\" for ByT5's bytes)");
  choice.file = beside;
  return choice;
}

}  // namespace compacter::train

// Which tokenizer a model folder asks for, as transformers' AutoTokenizer decides it, from the
// folder's files alone (nothing is loaded): tokenizer_config.json's "tokenizer_class", else
// config.json's; ByT5Tokenizer -> ByT5's bytes; T5Tokenizer, MT5Tokenizer (or their Fast forms)
// or no class -> the folder's spiece.model; any other class is refused by name.
// tokenizer_config.json's "extra_ids" gives the number of sentinels (mT5's folders say 0, UMT5's
// 300). Torch-free, so that the fuzz target `tokenizer_config` runs it as it is.
#pragma once
#include <cstdint>
#include <string>

namespace compacter::train {

struct TokenizerChoice {
  bool byte_level = false;
  std::string file;  // spiece.model, or the JSON file that chose the byte level ("" if none)
  // From tokenizer_config.json, as transformers' T5Tokenizer / ByT5Tokenizer take it; -1: the
  // class's default (100 for SentencePiece, 125 for bytes). Otherwise from 0 to 100000.
  int64_t extra_ids = -1;
};

// Throws Error unless `dir` is a folder with a config.json (a wrong --model is reported as such).
void check_model_folder(const std::string& dir);

// The tokenizer of model folder `dir`; `tokenizer` is --tokenizer: "byte" (kByteLevelTokenizerName,
// ByT5's bytes), a spiece.model file, or "" for the folder's own (above). Throws Error naming the
// file and field for a missing folder, spiece.model or tokenizer file, a JSON file that is not an
// object, a tokenizer_class that is not a string or not supported, an extra_ids that is not an
// integer from 0 to 100000.
TokenizerChoice choose_tokenizer(const std::string& dir, const std::string& tokenizer);

}  // namespace compacter::train

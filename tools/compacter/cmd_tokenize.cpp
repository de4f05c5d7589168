// `compacter tokenize` and `compacter detokenize`: text lines <-> T5 token ids with a
// SentencePiece spiece.model, following Hugging Face's T5Tokenizer, or with ByT5's byte-level
// tokenizer (--tokenizer byte, or a ByT5 model folder; see data/tokenizer.h).
#include <charconv>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "compacter/core/error.h"
#include "compacter/data/tokenizer.h"
#include "compacter/train/base_model.h"

namespace compacter::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer;
  std::vector<std::string> texts;
  int64_t max_length = -1;
  bool no_eos = false;
};

// --tokenizer: "byte" for ByT5's bytes, a model folder (its tokenizer), or a spiece.model path.
T5Tokenizer open_tokenizer(const std::string& name) {
  return train::tokenizer_from_argument(name);
}

struct DetokenizeOptions {
  std::string tokenizer;
  std::vector<std::string> ids;
  bool keep_special = false;
  bool clean_up = false;
};

// Calls `each(line, line_number)` for every line of stdin, without its "\n" or "\r\n".
template <typename Fn>
void for_each_stdin_line(Fn each) {
  std::string line;
  for (int64_t number = 1; std::getline(std::cin, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    each(line, number);
  }
}

void run_tokenize(const TokenizeOptions& opts) {
  const T5Tokenizer tokenizer = open_tokenizer(opts.tokenizer);
  auto print = [&](const std::string& text) {
    const std::vector<int64_t> ids = tokenizer.encode(text, opts.max_length, !opts.no_eos);
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) line += ' ';
      line += std::to_string(ids[i]);
    }
    std::cout << line << '\n';
  };
  if (!opts.texts.empty()) {
    for (const std::string& text : opts.texts) print(text);
  } else {
    for_each_stdin_line([&](const std::string& line, int64_t) { print(line); });
  }
  std::cout.flush();
}

// The ids of one whitespace-separated line; `where` names the line in error messages.
std::vector<int64_t> parse_ids(const std::string& line, const std::string& where,
                               const T5Tokenizer& tokenizer) {
  std::vector<int64_t> ids;
  size_t pos = 0;
  while (true) {
    pos = line.find_first_not_of(" \t", pos);
    if (pos == std::string::npos) break;
    size_t end = line.find_first_of(" \t", pos);
    if (end == std::string::npos) end = line.size();
    const std::string token = line.substr(pos, end - pos);
    int64_t id = 0;
    const auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), id);
    check(ec == std::errc() && ptr == token.data() + token.size(), where, ": bad token '", token,
          "' (expected an integer token id)");
    check(id >= 0 && id < tokenizer.vocab_size(), where, ": token id ", id,
          " is outside the vocabulary [0, ", tokenizer.vocab_size(), ")");
    ids.push_back(id);
    pos = end;
  }
  return ids;
}

void run_detokenize(const DetokenizeOptions& opts) {
  const T5Tokenizer tokenizer = open_tokenizer(opts.tokenizer);
  auto print = [&](const std::string& line, const std::string& where) {
    std::string text = tokenizer.decode(parse_ids(line, where, tokenizer), !opts.keep_special);
    if (opts.clean_up) text = clean_up_tokenization(text);
    std::cout << text << '\n';
  };
  if (!opts.ids.empty()) {
    for (size_t i = 0; i < opts.ids.size(); ++i) print(opts.ids[i], cat("--ids value ", i + 1));
  } else {
    for_each_stdin_line(
        [&](const std::string& line, int64_t number) { print(line, cat("line ", number)); });
  }
  std::cout.flush();
}

}  // namespace

void add_tokenize_commands(CLI::App& app) {
  auto tok = std::make_shared<TokenizeOptions>();
  CLI::App* tokenize = app.add_subcommand(
      "tokenize",
      "Text to T5 token ids (Hugging Face T5Tokenizer conventions): one line of space-separated "
      "ids per input text, </s> (1) appended. Sentinels such as <extra_id_0> and the tokens "
      "</s>, <pad>, <unk> written in the text become single ids. Reads one text per line from "
      "stdin when no --text is given.");
  tokenize
      ->add_option(
          "--tokenizer", tok->tokenizer,
          "SentencePiece model (T5's spiece.model), a model folder (its tokenizer: bytes for "
          "ByT5, else its spiece.model), or \"byte\" for ByT5's UTF-8 bytes")
      ->required();
  tokenize->add_option("--text", tok->texts, "Text to tokenize (repeatable); default: stdin lines");
  tokenize
      ->add_option("--max-length", tok->max_length,
                   "Truncate to at most N ids, keeping </s> as the last one")
      ->check(CLI::PositiveNumber);
  tokenize->add_flag("--no-eos", tok->no_eos, "Do not append </s>");
  tokenize->callback([tok] { run_tokenize(*tok); });

  auto detok = std::make_shared<DetokenizeOptions>();
  CLI::App* detokenize = app.add_subcommand(
      "detokenize",
      "T5 token ids to text: one line of whitespace-separated ids in, one line of text out. "
      "Special tokens (<pad>, </s>, <unk>, <extra_id_N>) are dropped unless --keep-special. "
      "Reads one id sequence per line from stdin when no --ids is given.");
  detokenize
      ->add_option(
          "--tokenizer", detok->tokenizer,
          "SentencePiece model (T5's spiece.model), a model folder (its tokenizer: bytes for "
          "ByT5, else its spiece.model), or \"byte\" for ByT5's UTF-8 bytes")
      ->required();
  detokenize->add_option("--ids", detok->ids,
                         "Space-separated token ids, e.g. \"8774 296 1\" (repeatable); "
                         "default: stdin lines");
  detokenize->add_flag("--keep-special", detok->keep_special,
                       "Write special tokens as their strings (</s>, <pad>, <extra_id_0>, ...)");
  detokenize->add_flag("--clean-up", detok->clean_up,
                       "Apply Hugging Face's clean_up_tokenization (\"it 's .\" -> \"it's.\"), "
                       "as transformers' decode() does by default");
  detokenize->callback([detok] { run_detokenize(*detok); });
}

}  // namespace compacter::cli

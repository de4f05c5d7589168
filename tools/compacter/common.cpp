// Shared CLI options and helpers.
#include "common.h"

#include <filesystem>
#include <fstream>
#include <iostream>

#include "compacter/core/error.h"
#include "compacter/core/json_file.h"
#include "compacter/nn/int8_linear.h"
#include "compacter/train/finetune.h"

namespace compacter::cli {

void add_model_options(CLI::App& cmd, train::ModelSpec& o, bool with_tokenizer, bool int8) {
  cmd.add_option("-m,--model", o.dir,
                 "Hugging Face T5 folder (config.json + model.safetensors or shards)")
      ->required();
  if (with_tokenizer)
    cmd.add_option("--tokenizer", o.tokenizer,
                   "spiece.model, or \"byte\" for ByT5's UTF-8 bytes (default: the model "
                   "folder's: its spiece.model, or bytes when its tokenizer_class is "
                   "ByT5Tokenizer)");
  cmd.add_option("--device", o.device, "cpu, cuda or cuda:N")->capture_default_str();
  std::vector<std::string> dtypes = {"fp32", "bf16", "autocast-bf16"};
  if (int8) dtypes.push_back("int8");
  cmd.add_option("--dtype", o.dtype,
                 int8
                     ? "fp32, bf16 (every tensor bf16), autocast-bf16 (fp32 weights, bf16 matrix "
                       "products) or int8 (CPU: the backbone's linear layers quantised to int8, "
                       "everything else fp32)"
                     : "fp32, bf16 (every tensor bf16) or autocast-bf16 (fp32 weights, bf16 matrix "
                       "products)")
      ->capture_default_str()
      ->check(CLI::IsMember(dtypes));
  if (int8)
    cmd.add_option("--int8-keep-fp32", o.int8_keep_fp32, nn::kInt8KeepFp32Help)
        ->capture_default_str();
  cmd.add_option("--resize-vocab", o.vocab_rows,
                 "cut or extend the vocabulary to N rows after loading (default: the "
                 "tokenizer's size when the model has more rows, as the paper does)");
}

void add_allow_base_mismatch_flag(CLI::App& cmd, bool& allow) {
  cmd.add_flag("--allow-base-mismatch", allow,
               "use an adapter even when it was trained on another base model than --model "
               "(its recorded weights or tokenizer fingerprint differ); a warning says so");
}

std::string& invocation() {
  static std::string line;
  return line;
}

std::vector<std::string>& arguments() {
  static std::vector<std::string> args;
  return args;
}

std::string shell_quoted(int argc, char** argv) {
  std::string out = "compacter";  // the program's name as the README writes it
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool plain = !a.empty() && a.find_first_not_of(
                                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789-_=./,:+@%") == std::string::npos;
    if (plain) {
      out += " " + a;
      continue;
    }
    std::string quoted = "'";
    for (char ch : a) quoted += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    out += " " + quoted + "'";
  }
  return out;
}

void add_text_option(CLI::App& cmd, std::vector<std::string>& texts, const std::string& help) {
  cmd.add_option("--text", texts, help)
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

nlohmann::json read_json_file(const std::string& path) {
  return read_json_document(path);
}

std::vector<std::string> input_lines(const std::vector<std::string>& texts) {
  if (!texts.empty()) return texts;
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

}  // namespace compacter::cli

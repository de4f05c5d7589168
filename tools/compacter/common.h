// Options shared by the subcommands that load a T5 model, and small CLI helpers.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compacter/data/tokenizer.h"
#include "compacter/nn/checkpoint.h"

namespace compacter::cli {

struct ModelOptions {
  std::string model_dir;
  std::string device = "cpu";
  std::string dtype = "fp32";
  int64_t resize_vocab = -1;
};

// --model (required), --device, --dtype, --resize-vocab.
void add_model_options(CLI::App& cmd, ModelOptions& o);

// Loads the model (printing unexpected tensors to stderr) in eval mode.
nn::T5Model load_model(const ModelOptions& o);

// The paper resizes the embedding to the tokenizer (32,128 -> 32,100 rows, spec §7.1); nothing
// when --resize-vocab chose the size.
void resize_to_tokenizer(nn::T5ModelImpl& model, const ModelOptions& o, const T5Tokenizer& tok);

// The tokenizer to use: `given`, or else model_dir/spiece.model (an error when missing).
std::string tokenizer_path(const std::string& given, const std::string& model_dir);

// Parses the JSON file at `path`; errors name the file (missing, unreadable, not JSON).
nlohmann::json read_json_file(const std::string& path);

// Text lines: the --text values, or else every line of stdin.
std::vector<std::string> input_lines(const std::vector<std::string>& texts);

}  // namespace compacter::cli

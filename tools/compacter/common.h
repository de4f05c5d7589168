// Options shared by the subcommands that load a T5 model, and small CLI helpers.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "compacter/nn/checkpoint.h"
#include "compacter/train/base_model.h"

namespace compacter::cli {

// --model (required), --device, --dtype, --resize-vocab, and --tokenizer when with_tokenizer.
void add_model_options(CLI::App& cmd, train::ModelSpec& spec, bool with_tokenizer = true);

// --text: one input per occurrence (repeatable), so that a forgotten pair of quotes is an error
// instead of one prediction per word.
void add_text_option(CLI::App& cmd, std::vector<std::string>& texts, const std::string& help);

// Loads the model as it is in its folder (no vocabulary rule; notes unexpected tensors on
// stderr), in eval mode: for the commands that look at a checkpoint itself (forward, generate).
nn::T5Model load_model(const train::ModelSpec& spec);

// Parses the JSON file at `path`; errors name the file (missing, unreadable, not JSON).
nlohmann::json read_json_file(const std::string& path);

// Text lines: the --text values, or else every line of stdin.
std::vector<std::string> input_lines(const std::vector<std::string>& texts);

}  // namespace compacter::cli

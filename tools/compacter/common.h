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
// int8: --dtype also takes int8 (commands that only decode: nn/int8_linear.h).
void add_model_options(CLI::App& cmd, train::ModelSpec& spec, bool with_tokenizer = true,
                       bool int8 = false);

// --allow-base-mismatch, for every command that loads an adapter.
void add_allow_base_mismatch_flag(CLI::App& cmd, bool& allow);

// --text: one input per occurrence (repeatable), so that a forgotten pair of quotes is an error
// instead of one prediction per word.
void add_text_option(CLI::App& cmd, std::vector<std::string>& texts, const std::string& help);

// Parses the JSON file at `path`; errors name the file (missing, unreadable, not JSON).
nlohmann::json read_json_file(const std::string& path);

// The command line this program was started with, shell-quoted where needed (set by main; for
// the records that say how a file was made, such as an adapter's card).
std::string& invocation();
// The program's arguments (argv[1..], deprecated flags replaced), for a command that starts
// copies of itself (train --nproc).
std::vector<std::string>& arguments();
std::string shell_quoted(int argc, char** argv);

// Text lines: the --text values, or else every line of stdin.
std::vector<std::string> input_lines(const std::vector<std::string>& texts);

}  // namespace compacter::cli

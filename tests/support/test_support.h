// Helpers shared by the tests: where ../shared is, skipping cleanly without it, running the CLI.
#pragma once
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "compacter/core/error.h"

namespace compacter::testing {

// Absolute path of a file or folder under the shared data folder (../shared).
std::string shared_path(const std::string& relative);

// True when shared_path(relative) exists.
bool shared_exists(const std::string& relative);

// How many times slower than a plain build the programs under test run: $COMPACTER_TEST_TIME_SCALE
// (scripts/sanitize.sh sets it for ThreadSanitizer), else 1. Tests that wait for something to
// be under way scale their waits by it.
double time_scale();

// A fresh empty temporary directory, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Result of running the compacter program.
struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs a simple shell command (quoted by the caller) with optional stdin text; its output is
// redirected to files, so a pipeline or list needs parentheses.
CommandResult run_command(const std::string& command, const std::string& stdin_text = "");

// Runs the built `compacter` binary with the given argument string (shell-quoted by the caller)
// and optional stdin text.
CommandResult run_compacter(const std::string& args, const std::string& stdin_text = "");

// The config.json text of the tiny T5 shape of the command-line tests (d_model 32, d_kv 8, d_ff
// 64, 2 layers, 4 heads, ReLU, tied output layer) with `vocab_size` rows.
std::string tiny_t5_config_json(int64_t vocab_size);
// Writes it to dir/config.json; returns that path.
std::string write_tiny_t5_config(const TempDir& dir, int64_t vocab_size);

// Writes a tiny random T5 with T5's vocabulary (32,128 rows; d_model 32, 2 layers, ReLU, tied)
// into `dir` as `compacter init-model --seed 3` does (the same library calls, in this process:
// one program start less per test), for command-line tests that need the real tokenizer;
// returns exit code 0, or 1 with the error in `err`.
CommandResult init_tiny_t5_with_t5_vocabulary(const std::string& dir);

// Saves into `out` an adapter of `method` (its paper settings, reduction factor 4, n = 2, prompt
// length 4, init seed 1) on the T5 in `model_dir` with its vocabulary cut to T5's tokenizer's
// 32,100 ids, as serve and predict cut it. Its trainable tensors are moved from their init by
// N(0, 0.5^2) noise from torch's global generator (seed it first), so that adapters' outputs
// differ from each other and from the base model's.
// `noise` sets that standard deviation; AdapterDrop drops block 0 only (the tiny T5 has 2).
void write_moved_adapter(const std::string& model_dir, const std::string& method,
                         const std::string& out, double noise = 0.5);

// Every method's name (peft::all_methods), for tests parameterised by method, and the test name
// GoogleTest allows for one (letters, digits, '_'): "compacter++" -> "compacter_plus_plus",
// "prompt-r" -> "prompt_r".
std::vector<std::string> all_method_names();
std::string method_test_name(const ::testing::TestParamInfo<std::string>& info);

// The lines of `text` (a program's output), without their '\n'.
std::vector<std::string> lines_of(const std::string& text);

// The message of the compacter::Error that `f` throws ("" when it throws none).
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const ::compacter::Error& e) {
    return e.what();
  }
  return "";
}

// Reads a whole file into a string (core/atomic_file.h's read_file: compacter::Error naming it
// when missing, a folder or unreadable).
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);

}  // namespace compacter::testing

// Skips the current test (reported by CTest as skipped) when the shared file is missing.
#define REQUIRE_SHARED(relative)                                                                \
  do {                                                                                          \
    if (!::compacter::testing::shared_exists(relative))                                         \
      GTEST_SKIP() << "shared data not found: " << ::compacter::testing::shared_path(relative); \
  } while (0)

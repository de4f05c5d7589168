// Implementation of the test helpers (temporary folders, shared data paths, running the CLI).
#include "support/test_support.h"

#include <nlohmann/json.hpp>

#include "compacter/core/atomic_file.h"
#include "compacter/io/t5_config.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace compacter::testing {

namespace fs = std::filesystem;

std::string shared_path(const std::string& relative) {
  const char* env = std::getenv("COMPACTER_SHARED_DIR");
  std::string base = env && *env ? env : COMPACTER_SHARED_DIR;
  return base + "/" + relative;
}

double time_scale() {
  const char* v = std::getenv("COMPACTER_TEST_TIME_SCALE");
  const double scale = v && *v ? std::atof(v) : 1.0;
  return scale >= 1.0 ? scale : 1.0;
}

bool shared_exists(const std::string& relative) {
  return fs::exists(shared_path(relative));
}

TempDir::TempDir() {
  std::string templ = (fs::temp_directory_path() / "compacter-test-XXXXXX").string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string read_file(const std::string& path) {
  return compacter::read_file(path);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path);
}

CommandResult run_command(const std::string& command, const std::string& stdin_text) {
  TempDir tmp;
  write_file(tmp.file("stdin"), stdin_text);
  const std::string cmd =
      command + " <" + tmp.file("stdin") + " >" + tmp.file("stdout") + " 2>" + tmp.file("stderr");
  int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(tmp.file("stdout"));
  r.err = read_file(tmp.file("stderr"));
  return r;
}

CommandResult run_compacter(const std::string& args, const std::string& stdin_text) {
  return run_command(std::string("'") + COMPACTER_BINARY + "' " + args, stdin_text);
}

std::string tiny_t5_config_json(int64_t vocab_size) {
  return R"({"vocab_size": )" + std::to_string(vocab_size) +
         R"(, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2,
             "num_heads": 4, "feed_forward_proj": "relu", "tie_word_embeddings": true})";
}

std::string write_tiny_t5_config(const TempDir& dir, int64_t vocab_size) {
  const std::string path = dir.file("config.json");
  write_file(path, tiny_t5_config_json(vocab_size));
  return path;
}

CommandResult init_tiny_t5_with_t5_vocabulary(const std::string& dir) {
  CommandResult r;
  try {
    const T5Config c = t5_config_from_json(nlohmann::json::parse(tiny_t5_config_json(32128)),
                                           "the tiny T5's config");
    nn::T5Model model(c);
    model->init_weights(3);
    nn::save_t5(*model, dir);
    r.exit_code = 0;
  } catch (const std::exception& e) {
    r.exit_code = 1;
    r.err = e.what();
  }
  return r;
}

std::vector<std::string> all_method_names() {
  std::vector<std::string> names;
  for (const auto& info : peft::all_methods()) names.push_back(info.name);
  return names;
}

std::string method_test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string out;
  for (char c : info.param) {
    if (std::isalnum(static_cast<unsigned char>(c)))
      out += c;
    else
      out += c == '+' ? "_plus" : "_";
  }
  return out;
}

void write_moved_adapter(const std::string& model_dir, const std::string& method,
                         const std::string& out, double noise) {
  nn::T5Model model = nn::load_t5(model_dir).model;
  model->resize_vocab(32100);
  peft::PeftOptions o = peft::method_defaults(method);
  o.reduction_factor = 4;
  o.n = 2;
  o.prompt_length = 4;
  o.adapterdrop_layers = "0";
  peft::attach(method, o, *model, 1);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : peft::trainable_parameters(*model)) p.add_(torch::randn_like(p) * noise);
  }
  peft::save_adapter(*model, {method, o, 1}, out);
}

}  // namespace compacter::testing

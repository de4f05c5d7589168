// Shared CLI options and helpers.
#include "common.h"

#include <filesystem>
#include <fstream>
#include <iostream>

#include "compacter/core/error.h"

namespace compacter::cli {

void add_model_options(CLI::App& cmd, ModelOptions& o) {
  cmd.add_option("-m,--model", o.model_dir,
                 "Hugging Face T5 folder (config.json + model.safetensors or shards)")
      ->required();
  cmd.add_option("--device", o.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd.add_option("--dtype", o.dtype, "fp32 or bf16")->capture_default_str();
  cmd.add_option("--resize-vocab", o.resize_vocab,
                 "cut or extend the vocabulary to N rows after loading (the paper: 32100)");
}

nn::T5Model load_model(const ModelOptions& o) {
  nn::T5LoadOptions lo;
  lo.device = nn::parse_device(o.device);
  lo.dtype = nn::parse_dtype(o.dtype);
  lo.vocab_rows = o.resize_vocab;
  nn::T5Loaded loaded = nn::load_t5(o.model_dir, lo);
  if (!loaded.unexpected.empty()) {
    std::cerr << "compacter: note: " << loaded.unexpected.size()
              << " tensor(s) in the checkpoint are not part of T5 and were ignored:";
    for (const auto& n : loaded.unexpected) std::cerr << " " << n;
    std::cerr << "\n";
  }
  loaded.model->eval();
  return loaded.model;
}

void resize_to_tokenizer(nn::T5ModelImpl& model, const ModelOptions& o, const T5Tokenizer& tok) {
  if (o.resize_vocab > 0) return;  // load_model applied the user's choice
  if (model.shared->weight.size(0) > tok.vocab_size()) model.resize_vocab(tok.vocab_size());
}

std::string tokenizer_path(const std::string& given, const std::string& model_dir) {
  if (!given.empty()) return given;
  const std::string beside = model_dir + "/spiece.model";
  check(std::filesystem::exists(beside), "no --tokenizer given and ", beside, " does not exist");
  return beside;
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  check(in.good(), "cannot open ", path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(path, ": not valid JSON (", e.what(), ")"));
  }
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

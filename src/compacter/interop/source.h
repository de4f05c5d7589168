// What every export and import shares (docs/interop.md). `compacter export` reads an adapter
// folder (adapter_config.json, docs/adapter-format.md) or a training run's folder, whose
// best_adapter/ is exported and whose run_config.json names the base model it was trained on;
// `compacter import` loads the base as every command does; both report what they wrote.
#pragma once
#include <torch/types.h>
#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "compacter/train/base_model.h"

namespace compacter::interop {

struct ExportSource {
  std::string adapter_dir;  // DIR, or DIR/best_adapter for a run
  std::string run_model;    // a run's recorded --model ("" for a plain adapter folder)
};

// Throws Error naming `dir` when it is neither an adapter folder nor a run with best_adapter/.
ExportSource resolve_export_source(const std::string& dir);

// The base model folder to use: `model` when given, else the run's; Error naming `what` (the
// format that needs it) when neither is known or the folder has no config.json.
std::string base_model_folder(const ExportSource& source, const std::string& model,
                              const std::string& what);

// Reads a JSON file; errors name the file (missing, not JSON, not an object).
nlohmann::json read_json_object(const std::string& path);

// Every tensor of a weights file, in the file's order, as CPU tensors in their stored dtype:
// a .safetensors file (io/safetensors.h) or a torch.save'd .bin (io/pytorch_bin.h, read without
// executing anything).
std::vector<std::pair<std::string, torch::Tensor>> read_tensor_file(const std::string& path);

// dir/STEM.safetensors, else dir/STEM.bin; Error naming both when neither exists.
std::string find_weights_file(const std::string& dir, const std::string& stem);

// What `compacter import` reads and writes.
struct ImportOptions {
  std::string dir;        // the other library's adapter folder
  train::ModelSpec base;  // the base model, loaded as every command loads it (its vocabulary cut
                          // to its tokenizer), so that the written adapter loads onto it
  std::string out;
  bool overwrite = false;
  std::string command;  // recorded in the adapter's config and card
};

// What an export or import did, for the command to print.
struct InteropReport {
  std::string method;              // our method name
  std::string out;                 // the folder written
  std::vector<std::string> files;  // its files, in the order written
  std::vector<std::string> notes;  // what people should know (a dropped part, a default used)
};

}  // namespace compacter::interop

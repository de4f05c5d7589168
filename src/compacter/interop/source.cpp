// Resolving the folder `compacter export` reads (see source.h).
#include "compacter/interop/source.h"

#include <filesystem>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/interop/import_config.h"
#include "compacter/io/pytorch_bin.h"
#include "compacter/io/safetensors.h"
#include "compacter/peft/adapter_file.h"

namespace compacter::interop {

namespace fs = std::filesystem;

nlohmann::json read_json_object(const std::string& path) {
  check(fs::is_regular_file(path), path, ": not found");
  return json_object_from_text(read_file(path, kMaxJsonFileBytes), path);
}

std::vector<std::pair<std::string, torch::Tensor>> read_tensor_file(const std::string& path) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  if (fs::path(path).extension() == ".bin") {
    const pytorch_bin::File file = pytorch_bin::File::open(path);
    for (const auto& t : file.index().dict.tensors) out.emplace_back(t.name, file.load(t.name));
    return out;
  }
  const safetensors::File file = safetensors::File::open(path);
  for (const auto& info : file.header().tensors) out.emplace_back(info.name, file.load(info.name));
  return out;
}

std::string find_weights_file(const std::string& dir, const std::string& stem) {
  const fs::path st = fs::path(dir) / (stem + ".safetensors"),
                 bin = fs::path(dir) / (stem + ".bin");
  if (fs::exists(st)) return st.string();
  if (fs::exists(bin)) return bin.string();
  throw Error(cat(dir, ": no weights (expected ", st.filename().string(), " or ",
                  bin.filename().string(), ")"));
}

ExportSource resolve_export_source(const std::string& dir) {
  check(fs::is_directory(dir), dir, ": no such folder (expected an adapter folder or a run)");
  ExportSource s;
  if (fs::exists(fs::path(dir) / peft::kAdapterConfigFile)) {
    s.adapter_dir = dir;
    return s;
  }
  const fs::path best = fs::path(dir) / "best_adapter";
  check(fs::exists(best / peft::kAdapterConfigFile), dir, " holds neither ",
        peft::kAdapterConfigFile, " (an adapter folder) nor best_adapter/",
        peft::kAdapterConfigFile, " (a finished training run)");
  s.adapter_dir = best.string();
  const fs::path run_config = fs::path(dir) / "run_config.json";
  if (fs::exists(run_config)) {
    const nlohmann::json j = read_json_object(run_config.string());
    if (j.contains("model") && j["model"].is_string()) s.run_model = j["model"].get<std::string>();
  }
  return s;
}

std::string base_model_folder(const ExportSource& source, const std::string& model,
                              const std::string& what) {
  const std::string dir = model.empty() ? source.run_model : model;
  check_usage(!dir.empty(), what, " needs the base model: give --model DIR (the Hugging Face T5 ",
              "folder the adapter was trained on)");
  check(fs::exists(fs::path(dir) / "config.json"), "base model ", dir,
        model.empty() ? " (recorded in the run's run_config.json)" : "",
        " has no config.json (expected a Hugging Face T5 folder; give it with --model)");
  return dir;
}

}  // namespace compacter::interop

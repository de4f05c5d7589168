// `compacter inspect FILE_OR_DIR [--json]`: the tensors of a safetensors file or model directory
// (name, dtype, shape, numel), the parameter count with tied embeddings counted once, each file's
// metadata, and the T5 config when config.json sits next to the weights. Reads headers only.
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "commands.h"
#include "compacter/core/error.h"
#include "compacter/io/safetensors.h"
#include "compacter/io/t5_config.h"

namespace compacter::cli {

namespace {

namespace fs = std::filesystem;
namespace st = compacter::safetensors;

struct InspectOptions {
  std::string path;
  bool json = false;
};

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// config.json in the directory, or next to the file; nullopt when there is none.
std::optional<std::string> config_path(const std::string& path) {
  fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  const fs::path config = dir / "config.json";
  if (fs::is_regular_file(config)) return config.string();
  return std::nullopt;
}

// Hugging Face T5 stores one embedding, shared.weight; the encoder and decoder embed_tokens are
// always the same tensor, and lm_head is too when tie_word_embeddings. Copies of these that a
// file does store are aliases, not extra parameters.
bool is_alias(const st::Checkpoint& ckpt, const std::string& name, bool tied) {
  const bool candidate = name == "encoder.embed_tokens.weight" ||
                         name == "decoder.embed_tokens.weight" ||
                         (tied && name == "lm_head.weight");
  return candidate && ckpt.contains("shared.weight") &&
         ckpt.info("shared.weight").shape == ckpt.info(name).shape;
}

void run_inspect(const InspectOptions& opt) {
  const st::Checkpoint ckpt = st::Checkpoint::open(opt.path);
  const std::optional<std::string> cfg_path = config_path(opt.path);
  std::optional<T5Config> config;
  if (cfg_path) config = load_t5_config(*cfg_path);
  const bool tied = config ? config->tie_word_embeddings : true;

  const std::vector<std::string> names = ckpt.names();
  int64_t parameters = 0;
  std::vector<std::string> aliases;
  for (const std::string& name : names) {
    if (is_alias(ckpt, name, tied)) {
      aliases.push_back(name);
    } else {
      parameters += ckpt.info(name).numel();
    }
  }

  if (opt.json) {
    nlohmann::ordered_json out;
    out["path"] = opt.path;
    out["files"] = nlohmann::ordered_json::array();
    for (const st::File& f : ckpt.files()) {
      out["files"].push_back({{"path", f.path()},
                              {"tensors", f.header().tensors.size()},
                              {"metadata", f.header().metadata}});
    }
    out["tensors"] = nlohmann::ordered_json::array();
    for (const std::string& name : names) {
      const st::TensorInfo& t = ckpt.info(name);
      out["tensors"].push_back({{"name", name},
                                {"dtype", st::dtype_name(t.dtype)},
                                {"shape", t.shape},
                                {"numel", t.numel()}});
    }
    out["num_tensors"] = names.size();
    out["parameters"] = parameters;
    out["aliases_not_counted"] = aliases;
    if (config) {
      out["config_path"] = *cfg_path;
      out["config"] = nlohmann::ordered_json::parse(t5_config_to_json(*config).dump());
    }
    std::cout << out.dump(2) << "\n";
    return;
  }

  size_t width = 4;
  for (const std::string& name : names) width = std::max(width, name.size());
  std::cout << ckpt.where() << ": " << ckpt.files().size()
            << (ckpt.files().size() == 1 ? " file" : " files") << "\n";
  const auto pad = [](const std::string& s, size_t w) {
    return s + std::string(w > s.size() ? w - s.size() : 0, ' ');
  };
  std::cout << pad("name", width) << "  " << pad("dtype", 5) << "  " << pad("shape", 16)
            << "  numel\n";
  for (const std::string& name : names) {
    const st::TensorInfo& t = ckpt.info(name);
    std::cout << pad(name, width) << "  " << pad(st::dtype_name(t.dtype), 5) << "  "
              << pad(shape_text(t.shape), 16) << "  " << t.numel() << "\n";
  }
  std::cout << names.size() << " tensors, " << parameters << " parameters";
  if (!aliases.empty()) {
    std::cout << " (not counted, aliases of shared.weight:";
    for (const std::string& a : aliases) std::cout << " " << a;
    std::cout << ")";
  }
  std::cout << "\n";
  for (const st::File& f : ckpt.files()) {
    if (f.header().metadata.empty()) continue;
    std::cout << "metadata of " << f.path() << ":\n";
    for (const auto& [k, v] : f.header().metadata) std::cout << "  " << k << ": " << v << "\n";
  }
  if (config) {
    std::cout << "config (" << *cfg_path << "):\n" << t5_config_to_json(*config).dump(2) << "\n";
  }
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto opt = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand(
      "inspect",
      "List the tensors of a safetensors file or model directory (model.safetensors or a sharded "
      "model.safetensors.index.json), the parameter count and config.json when present");
  cmd->add_option("path", opt->path, "a .safetensors file or a model directory")->required();
  cmd->add_flag("--json", opt->json, "print one JSON object instead of a table");
  cmd->callback([opt] { run_inspect(*opt); });
}

}  // namespace compacter::cli

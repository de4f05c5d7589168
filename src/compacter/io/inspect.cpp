// `compacter inspect`'s report: see inspect.h.
#include "compacter/io/inspect.h"

#include <filesystem>
#include <optional>
#include <vector>

#include "compacter/io/checkpoint_files.h"
#include "compacter/io/safetensors.h"
#include "compacter/io/t5_config.h"

namespace compacter {

namespace {

namespace fs = std::filesystem;
namespace st = compacter::safetensors;

// config.json in the directory, or next to the file; nullopt when there is none.
std::optional<std::string> config_path(const std::string& path) {
  fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  const fs::path config = dir / "config.json";
  if (fs::is_regular_file(config)) return config.string();
  return std::nullopt;
}

bool is_alias(const CheckpointFiles& ckpt, const std::string& name, bool tied) {
  const bool candidate = name == "encoder.embed_tokens.weight" ||
                         name == "decoder.embed_tokens.weight" ||
                         (tied && name == "lm_head.weight");
  return candidate && ckpt.contains("shared.weight") &&
         ckpt.info("shared.weight").shape == ckpt.info(name).shape;
}

}  // namespace

nlohmann::ordered_json inspect_checkpoint(const std::string& path) {
  const CheckpointFiles ckpt = CheckpointFiles::open(path);
  const std::optional<std::string> cfg_path = config_path(path);
  std::optional<T5Config> config;
  if (cfg_path) config = load_t5_config(*cfg_path);
  const bool tied = config ? config->tie_word_embeddings : true;

  const std::vector<std::string> names = ckpt.names();
  int64_t parameters = 0;
  std::vector<std::string> aliases;
  for (const std::string& name : names) {
    if (is_alias(ckpt, name, tied))
      aliases.push_back(name);
    else
      parameters += ckpt.info(name).numel();
  }
  nlohmann::ordered_json out;
  out["path"] = path;
  out["where"] = ckpt.where();
  out["format"] = weight_format_name(ckpt.format());
  out["files"] = nlohmann::ordered_json::array();
  for (const WeightFile& f : ckpt.files())
    out["files"].push_back({{"path", f.path}, {"tensors", f.tensors}, {"metadata", f.metadata}});
  out["tensors"] = nlohmann::ordered_json::array();
  for (const std::string& name : names) {
    const WeightInfo t = ckpt.info(name);
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
  return out;
}

}  // namespace compacter

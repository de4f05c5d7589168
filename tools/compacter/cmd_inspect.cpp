// `compacter inspect FILE_OR_DIR [--json]`: the tensors of a weights file or model directory,
// the parameter count and the T5 config (io/inspect.h), as a table or as JSON. Reads headers only.
#include <iostream>
#include <string>

#include "commands.h"
#include "compacter/io/inspect.h"

namespace compacter::cli {

namespace {

struct InspectOptions {
  std::string path;
  bool json = false;
};

std::string shape_text(const nlohmann::ordered_json& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + shape[i].dump();
  return s + "]";
}

void run_inspect(const InspectOptions& opt) {
  nlohmann::ordered_json r = inspect_checkpoint(opt.path);
  if (opt.json) {
    r.erase("where");
    std::cout << r.dump(2) << "\n";
    return;
  }
  const auto pad = [](const std::string& s, size_t w) {
    return s + std::string(w > s.size() ? w - s.size() : 0, ' ');
  };
  size_t width = 4;
  for (const auto& t : r["tensors"]) width = std::max(width, t["name"].get<std::string>().size());
  const size_t files = r["files"].size();
  std::cout << r["where"].get<std::string>() << ": " << files << (files == 1 ? " file" : " files")
            << " (" << r["format"].get<std::string>() << ")\n";
  std::cout << pad("name", width) << "  " << pad("dtype", 5) << "  " << pad("shape", 16)
            << "  numel\n";
  for (const auto& t : r["tensors"])
    std::cout << pad(t["name"].get<std::string>(), width) << "  "
              << pad(t["dtype"].get<std::string>(), 5) << "  " << pad(shape_text(t["shape"]), 16)
              << "  " << t["numel"].get<int64_t>() << "\n";
  std::cout << r["num_tensors"].get<size_t>() << " tensors, " << r["parameters"].get<int64_t>()
            << " parameters";
  if (!r["aliases_not_counted"].empty()) {
    std::cout << " (not counted, aliases of shared.weight:";
    for (const auto& a : r["aliases_not_counted"]) std::cout << " " << a.get<std::string>();
    std::cout << ")";
  }
  std::cout << "\n";
  for (const auto& f : r["files"]) {
    if (f["metadata"].empty()) continue;
    std::cout << "metadata of " << f["path"].get<std::string>() << ":\n";
    for (const auto& [k, v] : f["metadata"].items())
      std::cout << "  " << k << ": " << v.get<std::string>() << "\n";
  }
  if (r.contains("config"))
    std::cout << "config (" << r["config_path"].get<std::string>() << "):\n"
              << nlohmann::json::parse(r["config"].dump()).dump(2) << "\n";
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto opt = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand(
      "inspect",
      "List the tensors of a weights file or model directory (model.safetensors, "
      "pytorch_model.bin, or their sharded index), the parameter count and config.json when "
      "present");
  cmd->add_option("path", opt->path, "a .safetensors or .bin file, or a model directory")
      ->required();
  cmd->add_flag("--json", opt->json, "print one JSON object instead of a table");
  cmd->callback([opt] { run_inspect(*opt); });
}

}  // namespace compacter::cli

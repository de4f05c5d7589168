// `compacter convert --model DIR --out DIR2`: a Hugging Face folder with PyTorch weights
// (pytorch_model.bin, single or sharded) written as model.safetensors plus its configuration and
// tokenizer files (io/convert.h), atomically.
#include <iostream>

#include "commands.h"
#include "compacter/io/convert.h"

namespace compacter::cli {

namespace {

struct ConvertOptions {
  std::string model_dir, out;
};

void run_convert(const ConvertOptions& o) {
  const ConvertReport r = convert_to_safetensors(o.model_dir, o.out);
  std::cerr << "wrote " << o.out << "/model.safetensors: " << r.tensors << " tensors, " << r.bytes
            << " bytes";
  if (!r.aliases.empty()) {
    std::cerr << " (shared, written once:";
    for (const std::string& a : r.aliases) std::cerr << " " << a << ";";
    std::cerr << ")";
  }
  std::cerr << "\n";
  if (!r.copied.empty()) {
    std::cerr << "copied:";
    for (const std::string& f : r.copied) std::cerr << " " << f;
    std::cerr << "\n";
  }
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto o = std::make_shared<ConvertOptions>();
  CLI::App* cmd = app.add_subcommand(
      "convert",
      "Write model.safetensors from a Hugging Face folder with PyTorch weights (pytorch_model.bin "
      "or its shards); config and tokenizer files are copied");
  cmd->add_option("-m,--model", o->model_dir, "folder with pytorch_model.bin[.index.json]")
      ->required();
  cmd->add_option("--out", o->out, "new output folder (must not exist, or be empty)")->required();
  cmd->callback([o] { run_convert(*o); });
}

}  // namespace compacter::cli

// `compacter merge`: an adapter folded into its base model, written as a plain Hugging Face T5
// folder (peft/merge.h). For methods whose tensors change T5's own weights (full, lora, ia3).
#include <iostream>

#include "commands.h"
#include "compacter/peft/merge.h"

namespace compacter::cli {

namespace {

struct MergeOptions {
  std::string model_dir, adapter_dir, out;
  bool force = false;
};

void run_merge(const MergeOptions& o) {
  const peft::MergeReport r = peft::merge_adapter(o.model_dir, o.adapter_dir, o.out, o.force);
  std::cerr << "wrote " << o.out << ": " << r.method << " merged into " << o.model_dir << " ("
            << r.vocab_rows << " vocabulary rows)";
  for (const std::string& f : r.copied_files) std::cerr << ", " << f;
  std::cerr << "\n";
}

}  // namespace

void add_merge_command(CLI::App& app) {
  auto o = std::make_shared<MergeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "merge", "Fold an adapter (full, lora, ia3) into its base model: a plain Hugging Face T5");
  cmd->add_option("-m,--model", o->model_dir, "the base model's Hugging Face T5 folder")
      ->required();
  cmd->add_option("--adapter", o->adapter_dir, "adapter directory (adapter_config.json + weights)")
      ->required();
  cmd->add_option("--out", o->out, "output folder (config.json, model.safetensors, tokenizer)")
      ->required();
  cmd->add_flag("--force", o->force, "overwrite an existing model.safetensors");
  cmd->callback([o] { run_merge(*o); });
}

}  // namespace compacter::cli

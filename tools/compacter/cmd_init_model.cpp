// `compacter init-model`: a randomly initialised T5 (Hugging Face's init scheme) written as a
// Hugging Face folder, from a built-in config name or a config.json.
#include <torch/torch.h>

#include <filesystem>
#include <iostream>

#include "commands.h"
#include "compacter/core/error.h"
#include "compacter/io/t5_config.h"
#include "compacter/nn/checkpoint.h"

namespace compacter::cli {

namespace {

struct InitOptions {
  std::string config;
  std::string out;
  uint64_t seed = 0;
  int64_t vocab_size = -1;
  bool force = false;
};

void run_init(const InitOptions& o) {
  T5Config c = resolve_t5_config(o.config);
  if (o.vocab_size > 0) c.vocab_size = o.vocab_size;
  const std::string weights = o.out + "/model.safetensors";
  check(o.force || !std::filesystem::exists(weights), weights,
        " already exists (use --force to overwrite)");
  nn::T5Model model(c);
  model->init_weights(o.seed);
  nn::save_t5(*model, o.out);
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  std::cerr << "wrote " << o.out << ": " << params << " parameters\n";
}

}  // namespace

void add_init_model_command(CLI::App& app) {
  auto o = std::make_shared<InitOptions>();
  CLI::App* cmd = app.add_subcommand(
      "init-model", "Write a randomly initialised T5 (Hugging Face folder) from a config");
  cmd->add_option("--model-config", o->config,
                  "built-in name (" + builtin_t5_config_names() + ") or a config.json / folder")
      ->required();
  cmd->add_option("--out", o->out, "output folder")->required();
  cmd->add_option("--seed", o->seed, "random seed")->capture_default_str();
  cmd->add_option("--vocab-size", o->vocab_size, "override the vocabulary size");
  cmd->add_flag("--force", o->force, "overwrite an existing model.safetensors");
  cmd->callback([o] { run_init(*o); });
}

}  // namespace compacter::cli

// `compacter train` (spec §6): options, one library call (train::run_finetune in
// train/finetune.h), printing. Data parallelism (README "Data-parallel training";
// data_parallel.h): one rank under torchrun, or --nproc N local ranks.
#include <iostream>
#include <optional>

#include "commands.h"
#include "common.h"
#include "compacter/core/error.h"
#include "compacter/dist/environment.h"
#include "compacter/train/finetune.h"
#include "data_options.h"
#include "data_parallel.h"
#include "method_options.h"
#include "option_flags.h"
#include "stderr_progress.h"

namespace compacter::cli {

namespace {

struct TrainCli {
  train::ModelSpec model;
  DataCliOptions data;
  MethodOptions method;
  train::TrainOptions values;
  GivenFlags given;
  std::string config_file;
  std::string out;
  bool resume = false, overwrite = false, low_resource = false;
  int64_t max_new_tokens = -1;
  DataParallelCli parallel;
};

void run_train(TrainCli& o) {
  check_usage(!(o.resume && o.overwrite), "--resume and --overwrite exclude each other");
  const std::optional<dist::DistEnv> rank = rank_environment(o.parallel, "train");
  if (!rank) return;  // --nproc N: the ranks ran
  const dist::DistEnv& env = *rank;
  // Settings: defaults < --config < --low-resource < flags.
  nlohmann::json config = nlohmann::json::object();
  if (!o.config_file.empty()) {
    config = read_json_file(o.config_file);
    check(config.is_object(), o.config_file, ": must hold a JSON object");
    for (const auto& item : config.items())
      check(item.key() == "method" || item.key() == "method_options" || item.key() == "training" ||
                item.key() == "description",
            o.config_file, ": unknown key \"", item.key(),
            "\" (expected method, method_options, training, description)");
    if (o.method.method.empty() && config.contains("method"))
      o.method.method = config["method"].get<std::string>();
  }
  check_usage(!o.method.method.empty(), "--method is required (or \"method\" in --config)");
  train::FinetuneConfig c;
  c.model = o.model;
  c.data = to_data_spec(o.data);
  c.method = o.method.method;
  c.method_options =
      resolve_peft_options(o.method, config.value("method_options", nlohmann::json()));
  c.init_seed = given_init_seed(o.method);
  if (config.contains("training"))
    train::train_options_from_json(config["training"], o.config_file, c.training);
  if (o.low_resource) train::apply_low_resource_protocol(o.data.max_train_samples, c.training);
  apply_given_flags(o.values, o.given, c.training);
  c.max_new_tokens = o.max_new_tokens;
  c.out = o.out;
  c.command = invocation();
  c.mode = o.resume      ? train::RunMode::kResume
           : o.overwrite ? train::RunMode::kOverwrite
                         : train::RunMode::kNew;
  c.distributed = env;
  c.collective_timeout_seconds = o.parallel.dist_timeout;
  c.gradient_sync = o.parallel.gradient_sync();
  StderrProgress stderr_progress;
  RankProgress progress(stderr_progress, env.rank);
  const nlohmann::json results = train::run_finetune(c, progress);
  if (env.rank != 0) return;  // rank 0 reports
  std::cout << nlohmann::json({{"task", c.data.task},
                               {"method", c.method},
                               {"metrics", results["metrics"]},
                               {"trainable", results["parameters"]["trainable"]},
                               {"run_dir", o.out}})
                   .dump()
            << "\n";
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainCli>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Fine-tune a method on a task with the paper's protocol; keeps the best adapter");
  add_model_options(*cmd, o->model);
  add_data_options(cmd, o->data, false, false, false);
  add_method_options(*cmd, o->method, false);
  cmd->add_option("--config", o->config_file,
                  "JSON file: {\"method\", \"method_options\": {...}, \"training\": {...}} "
                  "(configs/ has the paper's); flags override it");
  cmd->add_option("-o,--out", o->out, "run directory")->required();
  cmd->add_flag("--resume", o->resume, "continue the unfinished run in --out");
  cmd->add_flag("--overwrite", o->overwrite, "replace a run already in --out");
  cmd->add_flag("--low-resource", o->low_resource,
                "the paper's low-resource protocol (spec §4.6) for --max-train-samples 100, 500, "
                "1000, 2000 or 4000: epochs 1000, 200, 100, 50 or 25, batch 40, evaluation and "
                "checkpoint every 250 steps (over --config; flags still override)");
  add_data_parallel_options(*cmd, o->parallel);
  cmd->add_option("--max-new-tokens", o->max_new_tokens,
                  "tokens generated at most in evaluations (default: the task's, 19 as the "
                  "paper's max_length 20)");
  // --dtype autocast-bf16 replaces the training option bf16_autocast on the command line.
  add_option_flags(*cmd, o->values, o->given,
                   "Training (defaults: spec §6; --config and flags override)", {"bf16_autocast"});
  cmd->callback([o] { run_train(*o); });
}

}  // namespace compacter::cli

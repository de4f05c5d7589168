// `compacter train` (spec §6): options, one library call (train::run_finetune in
// train/finetune.h), printing. Data parallelism (README "Data-parallel training"): with the
// torchrun environment set (WORLD_SIZE > 1) this process is one rank; --nproc N starts N local
// ranks as copies of this program (dist/launch.h) and waits for them.
#include <iostream>
#include <thread>

#include "commands.h"
#include "common.h"
#include "compacter/core/error.h"
#include "compacter/core/interrupt.h"
#include "compacter/core/subprocess.h"
#include "compacter/dist/environment.h"
#include "compacter/dist/launch.h"
#include "compacter/train/finetune.h"
#include "data_options.h"
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
  int64_t nproc = 1;
  double dist_timeout = 300.0;
};

// A rank's progress: rank 0's lines as one process's; the others' warnings only, marked.
class RankProgress : public ProgressSink {
 public:
  RankProgress(ProgressSink& inner, int64_t rank) : inner_(inner), rank_(rank) {}
  void info(const std::string& line) override {
    if (rank_ == 0) inner_.info(line);
  }
  void warning(const std::string& line) override {
    inner_.warning(rank_ == 0 ? line : cat("rank ", rank_, ": ", line));
  }
  void status(const std::string& line) override {
    if (rank_ == 0) inner_.status(line);
  }

 private:
  ProgressSink& inner_;
  int64_t rank_;
};

// --nproc N: N ranks of this command, each with the torchrun environment; the first failure
// stops the others and is the error.
void launch_ranks(const TrainCli& o) {
  check_usage(o.nproc >= 1, "--nproc must be at least 1, got ", o.nproc);
  // As torchrun: the cores shared among the ranks unless OMP_NUM_THREADS says otherwise.
  if (!std::getenv("OMP_NUM_THREADS")) {
    const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
    setenv("OMP_NUM_THREADS", std::to_string(std::max<int64_t>(1, cores / o.nproc)).c_str(), 1);
  }
  const dist::LaunchResult r = dist::launch_local_ranks(current_executable(), arguments(), o.nproc);
  check(r.succeeded(), "train --nproc ", o.nproc, ": rank ", r.failed_rank, " failed (", r.failure,
        "); the other ranks were stopped");
  if (r.interrupted)
    throw Interrupted(cat("train --nproc ", o.nproc, ": interrupted (continue with --resume)"));
}

void run_train(TrainCli& o) {
  check_usage(!(o.resume && o.overwrite), "--resume and --overwrite exclude each other");
  const dist::DistEnv env = dist::dist_env_from_process();
  if (!env.distributed() && o.nproc > 1) return launch_ranks(o);
  check_usage(!env.distributed() || o.nproc == 1 || o.nproc == env.world_size, "--nproc ", o.nproc,
              " differs from WORLD_SIZE=", env.world_size, " (under torchrun, leave --nproc out)");
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
  c.collective_timeout_seconds = o.dist_timeout;
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
  cmd->add_option("--nproc", o->nproc,
                  "data-parallel: start N local ranks (Gloo on loopback); --batch-size stays the "
                  "global batch. Under torchrun (WORLD_SIZE set) each process is one rank")
      ->capture_default_str();
  cmd->add_option("--dist-timeout", o->dist_timeout,
                  "data-parallel: seconds a rank waits for the others in a collective before it "
                  "stops with an error")
      ->capture_default_str();
  cmd->add_option("--max-new-tokens", o->max_new_tokens,
                  "tokens generated at most in evaluations (default: the task's, 19 as the "
                  "paper's max_length 20)");
  // --dtype autocast-bf16 replaces the training option bf16_autocast on the command line.
  add_option_flags(*cmd, o->values, o->given,
                   "Training (defaults: spec §6; --config and flags override)", {"bf16_autocast"});
  cmd->callback([o] { run_train(*o); });
}

}  // namespace compacter::cli

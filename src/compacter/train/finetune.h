// What `compacter train`, `eval` and `predict` do, as library calls: fine-tuning a method on a
// task with the paper's protocol (spec §6) into a run directory, scoring a saved adapter on a
// split (spec §5), and generating from texts with a base model and an adapter.
//
// A run directory holds (docs/adapter-format.md, README "Training"): run_config.json (every
// setting that can change a result), metrics.jsonl, checkpoint/ while unfinished, best_adapter/,
// predictions_{validation,test}.jsonl and results.json (written last: its presence marks the run
// finished). Inputs are checked and loaded before anything is written; a run killed at any moment
// is finished by --resume with the same results and adapter.
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compacter/core/progress.h"
#include "compacter/dist/environment.h"
#include "compacter/dist/gradient_sync.h"
#include "compacter/peft/methods.h"
#include "compacter/tasks/tasks.h"
#include "compacter/train/base_model.h"
#include "compacter/train/decoding/generation_config.h"
#include "compacter/train/options.h"
#include "compacter/train/run_directory.h"

namespace compacter::train {

// The task data to use: a task name (or "user") and how to read it. The task prefix (§4.2) is
// decided from the method unless no_prefix (data.add_prefix is ignored).
struct DataSpec {
  std::string task;
  tasks::DataOptions options;
  bool no_prefix = false;
};

struct FinetuneConfig {
  ModelSpec model;
  DataSpec data;
  std::string method;
  peft::PeftOptions method_options;   // resolved (the method's defaults, then the user's)
  std::optional<uint64_t> init_seed;  // the method's init; default: training.seed
  TrainOptions training;
  int64_t max_new_tokens = -1;  // generation length of the evaluations; -1: the task's
  std::string out;              // the run directory
  RunMode mode = RunMode::kNew;
  std::string command;  // how the run was asked for, for the adapter's card (not a setting)
  // Data parallelism (train/loop.h): this process's rank; world size 1 runs alone. Rank 0 alone
  // writes the run directory and scores the best adapter; run_finetune returns {"rank": r} on
  // the others.
  dist::DistEnv distributed;
  double collective_timeout_seconds = 300.0;  // a rank silent this long stops the others
  dist::GradientSyncOptions gradient_sync;    // buckets and overlap of the gradients' all-reduce
};

// run_config.json: every setting of `config` that can change a result.
nlohmann::json finetune_effective_config(const FinetuneConfig& config);

// Fine-tunes, keeps the best adapter by validation, scores it on validation and test and writes
// results.json, whose content it returns.
nlohmann::json run_finetune(const FinetuneConfig& config, ProgressSink& progress = no_progress());

struct EvaluateConfig {
  ModelSpec model;
  std::string adapter;  // adapter directory
  DataSpec data;
  std::string split;
  int64_t batch_size = 100;
  int64_t max_new_tokens = -1;       // -1: the task's
  std::string predictions_out;       // non-empty: {"id", "prediction"} JSON Lines written there
  bool allow_base_mismatch = false;  // score an adapter trained on another base anyway
  // How to decode (greedy by default: transformers' defaults with the model's ids; the model
  // folder's generation_config.json is not used, so that scores follow the paper's protocol);
  // its max_new_tokens is replaced by the one above.
  decoding::GenerationConfig generation;
  // Constrained decoding: each example's prediction is the most probable of the task's label
  // strings (teacher-forced scores, decoding/label_scores.h) instead of generated text.
  bool constrain_labels = false;
};

struct EvaluateResult {
  size_t examples = 0;
  std::map<std::string, double> metrics;  // empty when the split has no labels
  std::vector<std::string> predictions;
};

// Scores the adapter in `config.adapter` on a split (an error when the split has no labels and
// no predictions_out is asked for; an error when the adapter was trained on another base model,
// unless allowed). Warns when the adapter was trained on another task.
EvaluateResult evaluate_adapter(const EvaluateConfig& config,
                                ProgressSink& progress = no_progress());

// The paper's low-resource protocol (spec §4.6) for a train size of 100, 500, 1000, 2000 or 4000
// examples: its epochs, batch 40, evaluation and checkpoint every 250 steps.
void apply_low_resource_protocol(int64_t max_train_samples, TrainOptions& training);

// The paper's generation length (max_length 20, i.e. 19 new tokens); commands that decode without a
// task (generate, predict, serve) use transformers' defaults instead (20 new tokens).
constexpr int64_t kDefaultMaxNewTokens = 19;
// Default generation batch (eval, predict, generate, serve, and train's evaluations).
constexpr int64_t kDefaultGenerationBatch = 100;

}  // namespace compacter::train

// The training loop of spec §6 (Hugging Face Trainer semantics): AdamW over the trainable tensors
// only, linear warmup and decay, global-norm clipping, gradient accumulation, epochs or a step
// budget, evaluation every epoch or every N steps keeping the best adapter by the selection key,
// checkpoints for --resume that reproduce an uninterrupted run exactly (data order from
// seed + epoch, the dropout generator's state saved), Ctrl-C saving a checkpoint, and every file
// written atomically. Task-free: the caller supplies tokenised examples and an evaluator.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compacter/nn/t5.h"
#include "compacter/tasks/tasks.h"

namespace compacter::train {

// X(type, name, default, help): each training setting declared once (CLI flags, --config JSON,
// results.json's effective config).
#define COMPACTER_TRAIN_OPTIONS(X)                                                              \
  X(double, learning_rate, 3e-3, "peak learning rate (spec §6.2 per method)")                   \
  X(int64_t, batch_size, 100, "examples per forward pass")                                      \
  X(int64_t, gradient_accumulation, 1, "forward passes per optimizer step")                     \
  X(int64_t, eval_batch_size, 100, "examples per generation batch")                             \
  X(int64_t, epochs, 20, "passes over the train split (max_steps > 0 overrides)")               \
  X(int64_t, max_steps, -1, "optimizer steps in all (-1: from epochs)")                         \
  X(int64_t, warmup_steps, 500, "linear warmup steps (GLUE t5-base 500; SuperGLUE 0)")          \
  X(double, max_grad_norm, 1.0, "global gradient-norm clip (0: none)")                          \
  X(double, weight_decay, 0.0, "AdamW decoupled weight decay")                                  \
  X(int64_t, eval_steps, 0, "evaluate every N optimizer steps (0: at the end of every epoch)")  \
  X(int64_t, save_steps, 0, "also checkpoint every N optimizer steps (0: at evaluations only)") \
  X(int64_t, log_steps, 10, "progress line and metrics.jsonl record every N steps")             \
  X(uint64_t, seed, 42, "seed of the method's init, the shuffling and dropout")                 \
  X(bool, group_by_length, false, "batch examples of similar source length together")           \
  X(bool, bf16_autocast, false, "bf16 autocast of the forward pass (weights and AdamW stay fp32)")

struct TrainOptions {
#define COMPACTER_DECLARE_TRAIN_FIELD(type, name, def, help) type name = def;
  COMPACTER_TRAIN_OPTIONS(COMPACTER_DECLARE_TRAIN_FIELD)
#undef COMPACTER_DECLARE_TRAIN_FIELD
};
nlohmann::json train_options_to_json(const TrainOptions& o);
// Strict: unknown keys and wrong types are errors naming `source`.
void train_options_from_json(const nlohmann::json& j, const std::string& source, TrainOptions& o);

struct Evaluation {
  std::map<std::string, double> metrics;
  double selection = 0.0;  // larger is better
};

struct LoopCallbacks {
  std::function<Evaluation()> evaluate;                      // empty: no evaluation
  std::function<void(const std::string& dir)> save_adapter;  // writes an adapter directory
};

struct LoopResult {
  int64_t steps = 0;
  int64_t epochs_done = 0;
  double best_selection = -1e300;
  int64_t best_step = -1;
  std::vector<double> epoch_seconds;
  double train_seconds = 0.0;
  double examples_per_second = 0.0;
  int64_t peak_memory_bytes = 0;  // CPU: peak resident set; CUDA: peak allocated
  std::vector<nlohmann::json> evaluations;
};

// Thrown after Ctrl-C once the checkpoint is written; main() exits 130.
struct Interrupted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Trains `model` (its requires_grad set is the trainable set) on `train` with `o`. run_dir gets
// metrics.jsonl, checkpoint/ (while running) and best_adapter/ (with an evaluator; otherwise the
// final adapter). resume: continue from run_dir/checkpoint.
LoopResult run_training(nn::T5ModelImpl& model, const std::vector<tasks::EncodedExample>& train,
                        const TrainOptions& o, const std::string& run_dir, bool resume,
                        const LoopCallbacks& callbacks);

// Seconds from `t` until now, on the steady clock.
double seconds_since(std::chrono::steady_clock::time_point t);

// Peak resident set of this process (VmHWM), in bytes.
int64_t peak_rss_bytes();

// Replaces directory `dir` by `fresh` (a sibling written completely): dir -> dir.old, fresh ->
// dir, then dir.old removed. A crash in between leaves dir.old, which readers fall back to.
void replace_directory(const std::string& fresh, const std::string& dir);

}  // namespace compacter::train

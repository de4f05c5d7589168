// The training settings of spec §6 (Hugging Face Trainer semantics), each declared once: the
// command-line flags, --config JSON files, run_config.json and results.json all come from this
// list (core/options.h).
#pragma once
#include <cstdint>

#include "compacter/core/options.h"

namespace compacter::train {

// X(type, name, default, help).
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
  X(uint64_t, seed, 42, "seed of the shuffling and dropout (and of the method's init)")         \
  X(bool, group_by_length, false, "batch examples of similar source length together")           \
  X(bool, bf16_autocast, false, "bf16 autocast of the forward pass (weights and AdamW stay fp32)")

struct TrainOptions {
  COMPACTER_OPTIONS_BODY(COMPACTER_TRAIN_OPTIONS)
  // Throws UsageError naming the first invalid setting.
  void validate() const;
};

nlohmann::json train_options_to_json(const TrainOptions& o);
// Strict: unknown keys and wrong types are errors naming `source`.
void train_options_from_json(const nlohmann::json& j, const std::string& source, TrainOptions& o);

}  // namespace compacter::train

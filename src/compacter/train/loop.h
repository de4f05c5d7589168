// The training loop of spec §6 (Hugging Face Trainer semantics): train_step.h's optimizer step
// (AdamW over the trainable tensors only, global-norm clipping, gradient accumulation) under a
// linear warmup and decay, epochs or a step budget, evaluation every epoch or every N steps
// keeping the best adapter by the selection key, checkpoints for --resume that reproduce an
// uninterrupted run exactly (data order from seed + epoch, the dropout generator's state saved),
// Ctrl-C saving a checkpoint, and every file written atomically. Task-free: the caller supplies
// tokenised examples and an evaluator. Epochs are numbered from 1 in every record.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compacter/core/interrupt.h"
#include "compacter/core/progress.h"
#include "compacter/dist/process_group.h"
#include "compacter/nn/t5.h"
#include "compacter/tasks/tasks.h"
#include "compacter/train/options.h"

namespace compacter::train {

struct Evaluation {
  std::map<std::string, double> metrics;
  double selection = 0.0;  // larger is better
};

struct LoopCallbacks {
  std::function<Evaluation()> evaluate;                      // empty: no evaluation
  std::function<void(const std::string& dir)> save_adapter;  // writes an adapter directory
  // With a process group: every rank calls `evaluate` (which shares the work among the ranks and
  // gives each the same result); false: rank 0 evaluates alone while the others wait.
  bool evaluate_on_every_rank = false;
};

struct LoopResult {
  int64_t steps = 0;
  int64_t epochs_done = 0;
  double best_selection = -1e300;
  int64_t best_step = -1;
  std::vector<double> epoch_seconds;  // each epoch's wall time, evaluations included
  double total_seconds = 0.0;         // the loop's wall time, evaluations included
  double evaluation_seconds = 0.0;    // of which in evaluations
  double train_seconds = 0.0;         // the rest: training steps, checkpoints, logging
  int64_t examples = 0;               // training examples processed (with repeats)
  double examples_per_second = 0.0;   // examples / train_seconds: the training throughput
  int64_t peak_memory_bytes = 0;      // CPU: peak resident set; CUDA: peak allocated
  std::vector<nlohmann::json> evaluations;
  // Data parallelism (1 and zeros without a process group): this rank's collective payload and
  // the wall time it was blocked in collectives over the run (for the gradients' all-reduce,
  // started during the backward with overlap: only the wait after the backward).
  int64_t world_size = 1;
  int64_t gradient_bytes_per_step = 0;  // the all-reduced gradients of one step
  int64_t gradient_buckets = 0;         // ... in this many all-reduces
  double gradient_bucket_cap_mb = 0.0;
  bool gradient_overlap = false;
  int64_t gradient_overlapped_bytes = 0;    // of the gradient bytes, those started in a backward
  int64_t gradient_buckets_held_back = 0;   // buckets complete that waited for an earlier one
  bool gradient_buckets_replanned = false;  // planned again in the backward's completion order
  bool gradient_buckets_from_checkpoint = false;  // ... in the order its checkpoint recorded
  double gradient_wait_seconds = 0.0;             // waiting for the gradients after the backward
  int64_t communicated_bytes = 0;      // every collective's payload, the gradients' included
  double communication_seconds = 0.0;  // blocked in any collective, the gradients' wait included
};

// Trains `model` (its requires_grad set is the trainable set) on `train` with `o`. run_dir gets
// metrics.jsonl, checkpoint/ and best_adapter/ (with an evaluator: the best evaluation's;
// otherwise the final tensors). resume: continue from run_dir/checkpoint. The checkpoint stays
// until the caller has written the run's results (RunDirectory::finish), so that a kill at any
// later moment can still be resumed. Progress lines go to `progress`. Throws Interrupted after a
// Ctrl-C, once a checkpoint is written.
//
// With a process group (data parallelism, dist/process_group.h), every rank calls it with the
// same examples and options: o.batch_size stays the global batch; each rank takes its contiguous
// share of every global batch (the same order from the seed on every rank); rank 0's trainable
// tensors are broadcast first; the backward of each share is weighted by its target tokens over
// the whole batch's (x 1/accumulation), so the all-reduced sum of the trainable tensors' gradients
// is one process's gradient, and clipping, AdamW and the schedule see what one process would.
// The gradients' all-reduce follows the group's gradient_sync(): buckets, started during the
// backward of each step's last micro-batch with overlap, or after it (dist/gradient_sync.h).
// Dropout streams are seeded from seed and rank (rank 0: seed, as one process). Only rank 0 writes
// run_dir and evaluates (the others wait for it); every rank reads the checkpoint to resume (the
// same world size; a shared file system across machines).
LoopResult run_training(nn::T5ModelImpl& model, const std::vector<tasks::EncodedExample>& train,
                        const TrainOptions& o, const std::string& run_dir, bool resume,
                        const LoopCallbacks& callbacks, ProgressSink& progress = no_progress(),
                        dist::ProcessGroup* group = nullptr);

// The progress line's estimate of the time left: the training time per step since this process's
// first step (time spent in evaluations left out; start-up work never counts) times the steps
// left.
double eta_seconds(double seconds_since_first_step, double evaluation_seconds_since_first_step,
                   int64_t steps_since_first_step, int64_t steps_left);

// Seconds from `t` until now, on the steady clock.
double seconds_since(std::chrono::steady_clock::time_point t);

// results.json's "distributed" section from the loop's figures (`backend`: "none" for one
// process); with more than one rank, also how the gradients' buckets went.
nlohmann::json distributed_results(const LoopResult& r, const std::string& backend);

// Peak resident set of this process (VmHWM), in bytes.
int64_t peak_rss_bytes();

// Resident set of this process now (VmRSS), in bytes (0 when unknown).
int64_t resident_bytes();

// Hands the allocator's free pages back to the system: TCMalloc's, when the program links it
// (MallocExtension_ReleaseFreeMemory, found at run time; the library does not link TCMalloc),
// else glibc's (malloc_trim). After a model is cast (fp32 built, then bf16), the fp32 copies'
// pages would otherwise stay resident until reused.
void release_free_memory();

// Peak memory of a run on `device`: the CUDA caching allocator's peak allocated bytes (spec §8),
// else the process's peak resident set.
int64_t run_peak_memory_bytes(const torch::Device& device);

}  // namespace compacter::train

// A run's folder, for `train` and `pretrain` alike: the create / resume / overwrite policy, the
// effective-config check on --resume, the checkpoint's counters (state.json), and the repair of a
// directory swap a crash cut short.
//
// States: a folder is *finished* when it holds the results file, *unfinished* when it holds the
// run's config but no results (a run that was killed or interrupted at any moment, including its
// final evaluation), *fresh* otherwise (absent or without run files). New runs need a fresh
// folder; --overwrite removes the run's files first; --resume needs an unfinished one whose
// recorded settings equal today's (a difference names the setting and both values; paths are
// compared as files, so "data/" and "data" are the same).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace compacter::train {

struct RunLayout {
  std::string kind = "run";                // in messages: "a finished run"
  std::string results = "results.json";    // present: finished
  std::string config = "run_config.json";  // present without results: unfinished
  std::vector<std::string> files;          // everything a run writes (removed by overwrite)
  std::vector<std::string> blocking;       // other files that make a folder non-fresh
  std::set<std::string> path_settings;     // config keys (flattened "a.b") holding paths
};

// The layout of a `compacter train` run directory.
RunLayout finetune_layout();

enum class RunMode { kNew, kResume, kOverwrite };

class RunDirectory {
 public:
  // Checks that `dir` can be opened in `mode`, writing nothing (throws UsageError saying what is
  // there and which flag to pass).
  static void check_usable(const std::string& dir, const RunLayout& layout, RunMode mode);

  // Opens the folder for the run whose effective settings are `effective`, after the inputs have
  // been checked: kNew and kOverwrite (which removes the run's files first) create the folder and
  // write the config; kResume compares the recorded config with `effective` and moves back a
  // checkpoint or best_adapter that a crash left only as NAME.old.
  static RunDirectory open(const std::string& dir, const RunLayout& layout, RunMode mode,
                           const nlohmann::json& effective);

  const std::string& path() const { return dir_; }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }
  bool resuming() const { return resuming_; }
  // True when the folder holds a checkpoint to continue from (a resumed run killed before its
  // first checkpoint has none and starts again from step 0, with the same result).
  bool has_checkpoint() const;

 private:
  RunDirectory(std::string dir, bool resuming) : dir_(std::move(dir)), resuming_(resuming) {}
  std::string dir_;
  bool resuming_ = false;
};

// The first difference between two effective configs, as "key: recorded X, now Y" ("" when
// equal). Keys in `path_settings` are compared as file paths.
std::string first_config_difference(const nlohmann::json& recorded, const nlohmann::json& now,
                                    const std::set<std::string>& path_settings);

// The counters of a checkpoint's state.json (written by the training loop, read by --resume): where
// the run stopped and what it has measured so far. The tensors are in state.safetensors.
struct CheckpointState {
  int64_t step = 0;
  int64_t epoch = 0;  // completed epochs
  int64_t batch_in_epoch = 0;
  double best = -1e300;
  int64_t best_step = -1;
  double train_seconds = 0.0;  // the loop's wall time so far, evaluations included
  double evaluation_seconds = 0.0;
  double epoch_seconds_so_far = 0.0;
  int64_t examples = 0;
  double loss_sum = 0.0;  // since the last progress record
  int64_t loss_count = 0;
  std::vector<double> epoch_seconds;
  std::vector<nlohmann::json> evaluations;
  int64_t optimizer_steps = 0;
  // Data-parallel: the completion order the gradient buckets were re-planned in
  // (dist::GradientSync::order(); empty: not yet, or one process). Absent from state.json when
  // empty.
  std::vector<int64_t> gradient_bucket_order;
};

// state.json's fields (without the checksum of state.safetensors, which the loop adds).
nlohmann::json checkpoint_state_to_json(const CheckpointState& s);
// Reads state.json's fields: each must be there with its type (integers as JSON integers from 0
// to 2^63 - 1; best_step from -1 up to step), else an Error naming `source` and the field.
CheckpointState checkpoint_state_from_json(const nlohmann::json& j, const std::string& source);

// Replaces directory `dir` by `fresh` (a sibling written completely): dir -> dir.old, fresh ->
// dir, then dir.old removed. A crash in between leaves dir.old, which open() moves back.
void replace_directory(const std::string& fresh, const std::string& dir);

// Writes directory `dir` whole or not at all: `fill` writes the files into the sibling
// dir + ".new" (removed first), which then replaces `dir` (replace_directory). When `fill` throws
// (a full disk, a read-only file system), dir + ".new" is removed and `dir` stays as it was.
void write_directory(const std::string& dir, const std::function<void(const std::string&)>& fill);

}  // namespace compacter::train

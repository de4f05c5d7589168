// Command-line options that choose a task's data: --task, --data-dir, --split, splits, quirks,
// low-resource sampling and a user task's fields (shared by data, score, train and eval).
#pragma once
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "compacter/tasks/tasks.h"
#include "compacter/train/finetune.h"

namespace compacter::cli {

struct DataCliOptions {
  std::string task;
  std::string data_dir;
  std::string split;
  std::string method;  // decides the task prefix (§4.2)
  bool no_prefix = false;
  bool official_splits = false;
  bool fix_quirks = false;
  int64_t max_train_samples = -1;
  uint64_t data_seed = 42;
  std::string layout = "auto";
  bool skip_invalid = false;
  // user task
  std::string task_name = "user";
  std::string format;
  std::vector<std::string> source_fields;
  std::string target_field;
  std::vector<std::string> labels;
  std::vector<std::string> metrics;
  std::string id_field;
};

// with_split: --split (required when split_required); with_method: --method (commands that
// attach a method register their own --method and copy it into `method`).
void add_data_options(CLI::App* cmd, DataCliOptions& o, bool with_split, bool split_required,
                      bool with_method);
tasks::DataOptions to_data_options(const DataCliOptions& o);
// The library's description of the data (the task prefix left to the method, §4.2).
train::DataSpec to_data_spec(const DataCliOptions& o);
// The task's info (the user task's from its options).
tasks::TaskInfo task_info(const DataCliOptions& o);
// Loads o.split (or `split` when given), printing the skipped count with --skip-invalid.
std::vector<tasks::Example> load_examples(const DataCliOptions& o, const std::string& split = "");

}  // namespace compacter::cli

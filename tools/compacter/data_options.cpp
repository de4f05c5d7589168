// Data-selection flags (see data_options.h).
#include "data_options.h"

#include <iostream>

#include "compacter/core/error.h"

namespace compacter::cli {

void add_data_options(CLI::App* cmd, DataCliOptions& o, bool with_split, bool split_required,
                      bool with_method) {
  cmd->add_option("--task", o.task, "task name (see `compacter tasks`) or user")
      ->required()
      ->check(CLI::Validator(
          [](std::string& name) {
            if (name == "user") return std::string();
            try {
              tasks::find_task(name);
              return std::string();
            } catch (const Error& e) {
              return cat(e.what(), "; for your own files: --task user --data-dir DIR ",
                         "--source-field FIELD --target-field FIELD (docs/tasks.md)");
            }
          },
          "TASK"));
  cmd->add_option("--data-dir", o.data_dir,
                  "folder with the task's files: official GLUE TSVs / SuperGLUE JSONL or Hugging "
                  "Face to_json() files (or a benchmark folder holding the task's folder)");
  if (with_split) {
    auto* split =
        cmd->add_option("--split", o.split, "train, validation or test")
            ->check(CLI::IsMember({"train", "validation", "test", "validation_matched",
                                   "validation_mismatched", "test_matched", "test_mismatched"}));
    if (split_required) split->required();
  }
  if (with_method)
    cmd->add_option("--method", o.method,
                    "fine-tuning method; decides the task prefix (spec §4.2: only full, bitfit, "
                    "prompt-r, prompt-t and said get it)");
  cmd->add_flag("--no-prefix", o.no_prefix, "never add the task prefix");
  cmd->add_flag("--official-splits", o.official_splits,
                "the files' own train/validation/test instead of the paper's splits (§4.1)");
  cmd->add_flag("--fix-quirks", o.fix_quirks,
                "corrected forms of the reference's quirks (spec §9 #1-#6) instead of the paper's");
  cmd->add_option("--max-train-samples", o.max_train_samples,
                  "low-resource subsample of the train split (spec §4.6)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--data-seed", o.data_seed, "seed of the split permutations")
      ->capture_default_str();
  cmd->add_option("--layout", o.layout, "auto, official or hf")
      ->check(CLI::IsMember({"auto", "official", "hf"}))
      ->capture_default_str();
  cmd->add_flag("--skip-invalid", o.skip_invalid,
                "skip malformed rows (their count is printed to stderr) instead of failing");
  const std::string user = "User task (--task user)";
  cmd->add_option("--task-name", o.task_name, "user task: its name (the prefix)")
      ->capture_default_str()
      ->group(user);
  cmd->add_option("--format", o.format, "user task: jsonl, tsv or csv (default: file extension)")
      ->check(CLI::IsMember({"jsonl", "tsv", "csv"}))
      ->group(user);
  cmd->add_option("--source-field", o.source_fields,
                  "user task: input field(s), in order (repeatable or comma-separated)")
      ->delimiter(',')
      ->group(user);
  cmd->add_option("--target-field", o.target_field, "user task: the target field")->group(user);
  cmd->add_option("--labels", o.labels, "user task: allowed target strings (comma-separated)")
      ->delimiter(',')
      ->group(user);
  cmd->add_option("--metric", o.metrics,
                  "user task: accuracy, f1, mcc, pearson, spearman, macro_f1 or squad "
                  "(repeatable or comma-separated; default accuracy)")
      ->delimiter(',')
      ->group(user);
  cmd->add_option("--id-field", o.id_field, "user task: field holding the example id")->group(user);
}

tasks::DataOptions to_data_options(const DataCliOptions& o) {
  tasks::DataOptions d;
  d.data_dir = o.data_dir;
  d.paper_splits = !o.official_splits;
  d.fix_quirks = o.fix_quirks;
  d.add_prefix =
      !o.no_prefix && (o.method.empty() || tasks::method_adds_prefix(o.method, o.fix_quirks));
  d.max_train_samples = o.max_train_samples;
  d.data_seed = o.data_seed;
  d.skip_invalid = o.skip_invalid;
  d.layout = tasks::parse_layout(o.layout);
  d.user.name = o.task_name;
  d.user.format = o.format;
  d.user.source_fields = o.source_fields;
  d.user.target_field = o.target_field;
  d.user.labels = o.labels;
  d.user.metrics = o.metrics;
  d.user.id_field = o.id_field;
  return d;
}

train::DataSpec to_data_spec(const DataCliOptions& o) {
  train::DataSpec d;
  d.task = o.task;
  d.options = to_data_options(o);
  d.no_prefix = o.no_prefix;
  return d;
}

tasks::TaskInfo task_info(const DataCliOptions& o) {
  if (o.task == "user") return tasks::user_task_info(to_data_options(o).user);
  return tasks::find_task(o.task);
}

std::vector<tasks::Example> load_examples(const DataCliOptions& o, const std::string& split) {
  const std::string which = split.empty() ? o.split : split;
  check(!o.data_dir.empty(), "--data-dir is required to load ", o.task, " data");
  check(!which.empty(), "--split is required to load ", o.task, " data");
  int64_t skipped = 0;
  std::vector<tasks::Example> examples =
      tasks::load_split(o.task, which, to_data_options(o), &skipped);
  if (o.skip_invalid)
    std::cerr << "compacter: skipped " << skipped << " invalid row(s) of " << o.task << " " << which
              << "\n";
  return examples;
}

}  // namespace compacter::cli

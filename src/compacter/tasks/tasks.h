// GLUE and SuperGLUE (and a user's own files) as text-to-text tasks, following the reference
// code described in spec §4 (data) and §5 (metrics): the task registry, the readers of the
// official and Hugging Face file layouts, the formats of §4.2 with the quirks of §9 #1-#6, the
// split algorithm of §4.1, low-resource subsampling (§4.6), lengths (§4.3, §4.5) and metrics
// (§5.2).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace compacter {
class T5Tokenizer;
}

namespace compacter::tasks {

// One processed example.
struct Example {
  std::string id;      // stable: "<task>/<original split>/<row>" (+ "#<answer>" for ReCoRD rows)
  std::string source;  // formatted input text (with the task prefix when add_prefix)
  std::string target;  // label string ("0", "1", "3.8", a ReCoRD answer); empty when unlabeled
  std::vector<std::string> answers;  // ReCoRD: every gold answer; otherwise {target} ({} if none)
  std::string group;  // MultiRC: the question id (idx.question); ReCoRD: the query id; else empty
};

// Which file layout a data folder holds.
enum class Layout {
  kAuto,      // decide from the files present (see docs/tasks.md)
  kOfficial,  // GLUE TSVs (train/dev/test.tsv) and SuperGLUE JSONL (train/val/test.jsonl)
  kHf,        // Hugging Face datasets' to_json(): train/validation/test.jsonl, HF field layout
};
Layout parse_layout(const std::string& name);  // auto | official | hf

// A user's own task (task name "user"): one file per split in data_dir named
// train / validation (or val, dev) / test with the format's extension.
struct UserTaskOptions {
  std::string name = "user";               // the task prefix when add_prefix
  std::string format;                      // jsonl | tsv | csv (empty: found from the files)
  std::vector<std::string> source_fields;  // joined as "<field>: <value>" pieces (§4.2 style)
  std::string target_field;
  std::vector<std::string> labels;   // allowed target strings (empty: any)
  std::vector<std::string> metrics;  // built-in metric names (metric_names()); default accuracy
  std::string id_field;              // optional field used as the example id
};

struct DataOptions {
  std::string data_dir;            // folder with the task's files (or a benchmark folder above)
  bool paper_splits = true;        // §4.1 split algorithm; false = official train/validation/test
  bool add_prefix = true;          // task-name prefix (§4.2; method_adds_prefix())
  bool fix_quirks = false;         // corrected forms of §9 #1-#6 instead of the paper's
  int64_t max_train_samples = -1;  // §4.6 low-resource subsample of the train split
  uint64_t data_seed = 42;
  bool skip_invalid = false;  // skip malformed rows (counted in skipped / printed by the CLI)
  Layout layout = Layout::kAuto;
  UserTaskOptions user;
};

// Paper split sizes (spec §4.1 table); -1 where not applicable.
struct SplitSizes {
  int64_t train = -1, validation = -1, test = -1;
};

enum class SplitRule {
  kSmall,  // validation/test = halves of a permutation of the original validation set
  kLarge,  // validation = 1000 of a permutation of train, train = the rest, test = validation
  kMnli,   // train whole, validation = validation_mismatched, test = validation_matched
  kUser,   // the files as given; without a test file, the small-group rule
};

struct TaskInfo {
  std::string name;       // command-line name: cola, ..., boolq, ..., superglue-rte, wsc, user
  std::string code_name;  // the reference's name, used as the prefix (superglue-boolq, ...)
  std::string benchmark;  // glue | superglue | user
  std::string folder;     // official folder name (CoLA, SST-2, BoolQ, ...)
  std::vector<std::string> metrics;  // keys of score(), in the paper's order
  std::string selection_metric;      // "average_metrics": mean of `metrics` (spec §5.2, §6.4)
  SplitRule split_rule = SplitRule::kSmall;
  SplitSizes paper_sizes;                  // §4.1 table (ReCoRD before the per-answer expansion)
  std::vector<std::string> labels;         // target strings, used to size targets (§4.5)
  std::vector<std::string> label_names;    // meaning of each label id ("entailment", ...)
  std::vector<std::string> source_fields;  // input fields in source order (§4.2)
  std::string truncated_field;         // §4.3: the last field, the one that loses text when cut
  int64_t max_source_length = 128;     // §4.5, with </s>
  int64_t max_target_length = -1;      // §4.5: -1 = longest tokenised label (target_length())
  int64_t generation_max_length = 20;  // §5.1: what the paper effectively decoded with
  int64_t fixed_generation_max_length = 128;  // §5.1: what the code intended
  bool used_in_paper = true;                  // false for wnli, superglue-rte, wsc
};

const std::vector<TaskInfo>& all_tasks();
// Accepts the command-line name or the reference's code name; throws listing the known names.
const TaskInfo& find_task(const std::string& name);
// Task info for the user task with these options (metrics and labels filled in).
TaskInfo user_task_info(const UserTaskOptions& options);

// §4.2 / §9 #5: whether the method's inputs carry the task prefix, as its record says
// (peft::MethodInfo::task_prefix: the paper's methods without adapters - full, bitfit, prompt-r,
// prompt-t, said - and lora, ia3; not the adapter family). Throws for an unknown method.
// With fix_quirks every method gets the prefix (T5's own convention).
bool method_adds_prefix(const std::string& method, bool fix_quirks = false);

// Loads one split (train | validation | test; MNLI in official mode also validation_matched,
// validation_mismatched, test_matched, test_mismatched). `skipped` (optional) receives the number
// of rows skipped with skip_invalid.
std::vector<Example> load_split(const std::string& task, const std::string& split,
                                const DataOptions& options, int64_t* skipped = nullptr);

// torch::randperm(n) drawn from a fresh CPU generator seeded with `seed` (spec §4.1 perm(N)).
std::vector<int64_t> permutation(int64_t n, uint64_t seed);

// §4.6: the paper's low-resource train sizes and epochs (100 -> 1000, ..., 4000 -> 25).
const std::vector<std::pair<int64_t, int64_t>>& low_resource_epochs();
// Epochs for a low-resource train size; throws for a size not in the table.
int64_t low_resource_epochs_for(int64_t train_samples);

// §4.5: training target length: the longest tokenised label (with </s>) or the task's fixed
// max_target_length (ReCoRD 128; user tasks without labels 128).
int64_t target_length(const TaskInfo& task, const T5Tokenizer& tokenizer, bool fix_quirks = false);
// The task's target strings: "0", "1", ... (paper, §9 #6) or, with fix_quirks, the label words.
std::vector<std::string> task_labels(const TaskInfo& task, bool fix_quirks);

// Token ids of an example, truncated at the end to the task's lengths (§4.3, §4.5).
struct EncodedExample {
  std::vector<int64_t> source_ids;
  std::vector<int64_t> target_ids;
};
EncodedExample encode_example(const Example& example, const TaskInfo& task,
                              const T5Tokenizer& tokenizer, int64_t target_len);

// Metrics (spec §5.2, every value x100). `predictions[i]` belongs to `references[i]`; both are
// whitespace-stripped first (as the reference's decoding post-processing does).
std::map<std::string, double> score(const std::string& task,
                                    const std::vector<std::string>& predictions,
                                    const std::vector<Example>& references);
// score() for a user task.
std::map<std::string, double> score_user(const UserTaskOptions& options,
                                         const std::vector<std::string>& predictions,
                                         const std::vector<Example>& references);
// The model-selection key (§5.2 "average_metrics", §6.4): the mean of the task's metrics.
double selection_value(const std::string& task, const std::map<std::string, double>& metrics);
// The paper's "Avg" column: the unweighted mean of every individual number in a row (§5.2).
double paper_average(const std::vector<double>& numbers);

}  // namespace compacter::tasks

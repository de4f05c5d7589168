// Task-aware inputs for a trained adapter (issue "one inference path", point 4): the settings
// that decide how a task's rows became source texts in training (the task, whether the task
// prefix was added, the paper's quirks or their corrected forms, a user task's fields), recorded
// in the adapter, so that `predict` and `serve` can take a task's own fields
// ({"sentence1": ..., "sentence2": ...} for RTE) and format them exactly as training did (spec
// §4.2, §9 #1-#6), and map the generated label string back to the label's name (or, for STS-B,
// to its number).
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "compacter/tasks/readers.h"
#include "compacter/tasks/tasks.h"

namespace compacter::tasks {

struct InputFormat {
  std::string task;         // a task name (find_task) or "user"
  bool add_prefix = true;   // the task prefix (§4.2; method_adds_prefix)
  bool fix_quirks = false;  // corrected formats instead of the paper's (§9 #1-#6)
  UserTaskOptions user;     // task "user": its fields, labels, prefix name
};

// The format of `task` as load_split formats it with `options`.
InputFormat input_format(const std::string& task, const DataOptions& options);

// {"task", "add_prefix", "fix_quirks", "fields": [input field names](, "user": {...})}, and
// back (strict: errors name `source` and the key; "fields" is for people and is not read).
nlohmann::json input_format_to_json(const InputFormat& f);
InputFormat input_format_from_json(const nlohmann::json& j, const std::string& source);

// The source text of one row of the task's fields (Hugging Face's field names, as `--layout hf`
// files hold them; a label field is allowed and ignored). Errors name `where` and the field;
// a row that stands for several inputs (a MultiRC passage with several answers) is refused.
std::string format_fields(const InputFormat& f, const nlohmann::json& fields, const Where& where);

// The source length training kept (§4.3, §4.5: 128 tokens with </s> for GLUE, 256 for
// SuperGLUE): fields are cut as training cut them.
int64_t max_source_length(const InputFormat& f);

// The input field names of the format, for messages ("sentence1, sentence2").
std::string field_names(const InputFormat& f);

// What a generated output means: the label's name for classification tasks ("entailment" for
// "0" on RTE; user tasks: the output when it is one of their labels), the number for STS-B, and
// null when the output is no label (or the task has free-form answers).
nlohmann::json interpret_output(const InputFormat& f, const std::string& output);

}  // namespace compacter::tasks

// The parts of the task table that need a PEFT method or the tokenizer: the prefix rule (§4.2,
// §9 #5: whether a method adds the task prefix), target lengths (§4.5: the longest tokenised
// label) and the encoding of an example into ids (tasks.h).
#include <algorithm>

#include "compacter/data/tokenizer.h"
#include "compacter/peft/methods.h"
#include "compacter/tasks/tasks.h"

namespace compacter::tasks {

bool method_adds_prefix(const std::string& method, bool fix_quirks) {
  const bool prefix = peft::find_method(method).task_prefix;  // throws for an unknown method
  return prefix || fix_quirks;
}

int64_t target_length(const TaskInfo& task, const T5Tokenizer& tokenizer, bool fix_quirks) {
  if (task.max_target_length > 0) return task.max_target_length;
  int64_t longest = 1;
  for (const std::string& label : task_labels(task, fix_quirks))
    longest = std::max<int64_t>(longest, static_cast<int64_t>(tokenizer.encode(label).size()));
  return longest;
}

EncodedExample encode_example(const Example& example, const TaskInfo& task,
                              const T5Tokenizer& tokenizer, int64_t target_len) {
  EncodedExample e;
  e.source_ids = tokenizer.encode(example.source, task.max_source_length);
  e.target_ids = tokenizer.encode(example.target, target_len);
  return e;
}

}  // namespace compacter::tasks

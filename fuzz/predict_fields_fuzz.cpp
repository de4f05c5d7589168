// Fuzz target for the task's fields that `compacter predict` (one JSON object a line, or
// --input fields) and `serve` take instead of a text (tasks/inputs.h): the line is parsed as
// predict parses it, then formatted as training formatted the task's rows (format_fields), and
// the result read back as an output (interpret_output). The first input byte picks the task
// (bits 2-7: one of the task table's, or a user task with the fields "question" and "context" and
// the labels "yes" and "no") and the format (bit 0: the task prefix, bit 1: the corrected forms
// of §9). Beyond "accepted or compacter::Error": the source is a text the server can send back
// (valid UTF-8: nlohmann's dump throws otherwise), and the task's source length is positive.
#include <string>

#include "compacter/tasks/inputs.h"
#include "fuzz_target.h"

namespace {

compacter::tasks::InputFormat format_of(uint8_t choice) {
  using namespace compacter::tasks;
  const auto& tasks = all_tasks();
  InputFormat f;
  const size_t k = (choice >> 2) % (tasks.size() + 1);
  f.task = k < tasks.size() ? tasks[k].name : "user";
  f.add_prefix = (choice & 1) != 0;
  f.fix_quirks = (choice & 2) != 0;
  if (f.task == "user") {
    f.user.name = "qa";
    f.user.source_fields = {"question", "context"};
    f.user.target_field = "answer";
    f.user.labels = {"yes", "no"};
  }
  return f;
}

}  // namespace

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  using namespace compacter::tasks;
  if (size == 0) return false;
  const InputFormat f = format_of(data[0]);
  const std::string line(reinterpret_cast<const char*>(data + 1), size - 1);
  nlohmann::json fields;
  try {  // as cmd_predict.cpp reads a line of fields: a refused line is that line's error
    fields = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  if (!fields.is_object()) return false;
  return compacter_fuzz_accepted_unless_error([&] {
    const std::string source = format_fields(f, fields, Where{"line 1", 1});
    (void)nlohmann::json(source).dump();  // throws a type_error (a bug) for invalid UTF-8
    if (max_source_length(f) <= 0) __builtin_trap();
    (void)interpret_output(f, source).dump();
    (void)field_names(f);
  });
}

COMPACTER_FUZZ_ENTRY_POINT

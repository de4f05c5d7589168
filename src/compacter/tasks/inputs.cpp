// Task-aware inputs: see inputs.h.
#include "compacter/tasks/inputs.h"

#include <algorithm>

#include "compacter/core/error.h"
#include "compacter/tasks/text.h"

namespace compacter::tasks {

// In load.cpp and user_task.cpp: one row formatted as load_split formats the task's rows.
std::vector<Example> format_hf_row(const std::string& task, const nlohmann::json& row,
                                   const DataOptions& o, const Where& w);
Example format_user_row(const nlohmann::json& row, const Where& w, const DataOptions& o);

namespace {

DataOptions data_options_of(const InputFormat& f) {
  DataOptions o;
  o.add_prefix = f.add_prefix;
  o.fix_quirks = f.fix_quirks;
  o.user = f.user;
  return o;
}

TaskInfo info_of(const InputFormat& f) {
  return f.task == "user" ? user_task_info(f.user) : find_task(f.task);
}

template <typename T>
T get(const nlohmann::json& j, const std::string& key, const std::string& source) {
  check(j.contains(key), source, ": missing \"", key, "\"");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(cat(source, ": \"", key, "\" has the wrong type (", j.at(key).type_name(), ")"));
  }
}

}  // namespace

InputFormat input_format(const std::string& task, const DataOptions& options) {
  InputFormat f;
  f.task = task == "user" ? task : find_task(task).name;
  f.add_prefix = options.add_prefix;
  f.fix_quirks = options.fix_quirks;
  if (task == "user") f.user = options.user;
  return f;
}

nlohmann::json input_format_to_json(const InputFormat& f) {
  const std::vector<std::string> fields =
      f.task == "user" ? f.user.source_fields : info_of(f).source_fields;
  nlohmann::json j = {{"task", f.task},
                      {"add_prefix", f.add_prefix},
                      {"fix_quirks", f.fix_quirks},
                      {"fields", fields}};
  if (f.task == "user")
    j["user"] = {{"name", f.user.name},
                 {"source_fields", f.user.source_fields},
                 {"target_field", f.user.target_field},
                 {"labels", f.user.labels}};
  return j;
}

InputFormat input_format_from_json(const nlohmann::json& j, const std::string& source) {
  check(j.is_object(), source, ": expected an object, found ", j.type_name());
  for (const auto& item : j.items())
    check(item.key() == "task" || item.key() == "add_prefix" || item.key() == "fix_quirks" ||
              item.key() == "user" || item.key() == "fields",
          source, ": unknown key \"", item.key(), "\"");
  InputFormat f;
  f.task = get<std::string>(j, "task", source);
  f.add_prefix = get<bool>(j, "add_prefix", source);
  f.fix_quirks = get<bool>(j, "fix_quirks", source);
  if (f.task == "user") {
    const std::string user_source = source + ": user";
    const nlohmann::json& u = j.contains("user") ? j.at("user") : nlohmann::json();
    check(u.is_object(), user_source, ": expected an object");
    f.user.name = get<std::string>(u, "name", user_source);
    f.user.source_fields = get<std::vector<std::string>>(u, "source_fields", user_source);
    f.user.target_field = get<std::string>(u, "target_field", user_source);
    f.user.labels = get<std::vector<std::string>>(u, "labels", user_source);
  } else {
    try {
      find_task(f.task);
    } catch (const Error& e) {
      throw Error(cat(source, ": ", e.what()));
    }
  }
  return f;
}

int64_t max_source_length(const InputFormat& f) {
  return info_of(f).max_source_length;
}

std::string field_names(const InputFormat& f) {
  const std::vector<std::string> fields =
      f.task == "user" ? f.user.source_fields : info_of(f).source_fields;
  std::string out;
  for (const std::string& name : fields) out += (out.empty() ? "" : ", ") + name;
  return out;
}

std::string format_fields(const InputFormat& f, const nlohmann::json& fields, const Where& w) {
  check(fields.is_object(), w.str(), ": expected the task's fields as a JSON object");
  const DataOptions o = data_options_of(f);
  if (f.task == "user") return format_user_row(fields, w, o).source;
  const std::vector<Example> examples = format_hf_row(f.task, fields, o, w);
  check(!examples.empty(), w.str(), ": the fields stand for no input");
  for (const Example& e : examples)
    check(e.source == examples.front().source, w.str(), ": the fields stand for ", examples.size(),
          " inputs (one per answer): send one per request");
  return examples.front().source;
}

nlohmann::json interpret_output(const InputFormat& f, const std::string& output) {
  const std::string s = text::strip(output);
  const TaskInfo t = info_of(f);
  if (t.name == "stsb") {
    const auto v = text::parse_python_float(s);
    return v ? nlohmann::json(*v) : nlohmann::json();
  }
  if (f.task == "user") {
    const auto& labels = f.user.labels;
    return std::find(labels.begin(), labels.end(), s) != labels.end() ? nlohmann::json(s)
                                                                      : nlohmann::json();
  }
  if (t.label_names.empty()) return nlohmann::json();
  const std::vector<std::string> strings = task_labels(t, f.fix_quirks);
  for (size_t k = 0; k < strings.size(); ++k)
    if (strings[k] == s) return t.label_names[k];
  return nlohmann::json();
}

}  // namespace compacter::tasks

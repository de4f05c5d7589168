// A user's own task (task name "user"): JSON Lines, TSV or CSV files per split, written as text
// to text like the built-in tasks (§4.2 style: "<prefix> <field>: <value> ..."), scored with the
// built-in metrics of §5.2. Without a test file, paper splits halve the validation set as §4.1's
// small group does.
#include <algorithm>
#include <filesystem>
#include <functional>

#include "compacter/core/error.h"
#include "compacter/tasks/readers.h"
#include "compacter/tasks/tasks.h"
#include "compacter/tasks/text.h"

namespace compacter::tasks {

namespace fs = std::filesystem;
using nlohmann::json;
using Strings = std::vector<std::string>;

std::vector<Example> split_user_rows(
    const std::string& split, uint64_t seed, int64_t max_train,
    const std::function<std::vector<Example>(const std::string&)>& load);
std::vector<Example> subsample_examples(std::vector<Example> rows, int64_t n, uint64_t seed);

namespace {

Strings extensions(const std::string& format) {
  if (format.empty()) return {".jsonl", ".json", ".tsv", ".csv"};
  if (format == "jsonl") return {".jsonl", ".json"};
  if (format == "tsv") return {".tsv"};
  if (format == "csv") return {".csv"};
  throw Error(cat("unknown user-task format '", format, "' (expected jsonl, tsv or csv)"));
}

// The file of an original split, or "" when there is none.
std::string user_file(const std::string& split, const DataOptions& o) {
  const Strings stems =
      split == "validation" ? Strings{"validation", "val", "dev"} : Strings{split};
  for (const std::string& stem : stems)
    for (const std::string& ext : extensions(o.user.format)) {
      const fs::path p = fs::path(o.data_dir) / (stem + ext);
      if (fs::is_regular_file(p)) return p.string();
    }
  return "";
}

// A JSON value as the text Python's str() would give.
std::string value_text(const json& v, const std::string& name, const Where& w) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_number_integer()) return v.dump();
  if (v.is_number()) return text::python_float_str(v.get<double>());
  throw Error(
      cat(w.str(), ": field \"", name, "\": expected a string or number, found ", json_kind(v)));
}

Example make_example(const json& row, const Where& w, const std::string& split, int64_t index,
                     const DataOptions& o) {
  const UserTaskOptions& u = o.user;
  Strings pieces;
  if (o.add_prefix) pieces.push_back(u.name);
  for (const std::string& f : u.source_fields) {
    pieces.push_back(f + ":");
    pieces.push_back(value_text(field(row, f, w), f, w));
  }
  Example ex;
  for (size_t i = 0; i < pieces.size(); ++i) ex.source += (i ? " " : "") + pieces[i];
  const auto it = row.find(u.target_field);
  if (it == row.end() || it->is_null()) {
    check(split == "test", w.str(), ": missing field \"", u.target_field,
          "\" (the target; only test rows may lack it)");
  } else {
    ex.target = value_text(*it, u.target_field, w);
    if (!u.labels.empty()) {
      std::string list;
      for (const std::string& l : u.labels) list += (list.empty() ? "" : ", ") + l;
      check(std::find(u.labels.begin(), u.labels.end(), ex.target) != u.labels.end(), w.str(),
            ": field \"", u.target_field, "\": unknown label \"", ex.target, "\" (expected one of ",
            list, ")");
    }
  }
  if (!ex.target.empty()) ex.answers = {ex.target};
  ex.id = u.id_field.empty() ? cat(u.name, "/", split, "/", index)
                             : value_text(field(row, u.id_field, w), u.id_field, w);
  return ex;
}

std::vector<Example> read_user_file(const std::string& path, const std::string& split,
                                    const DataOptions& o, int64_t* skipped) {
  std::vector<Example> out;
  auto add = [&](const json& row, const Where& w) {
    try {
      out.push_back(make_example(row, w, split, static_cast<int64_t>(out.size()), o));
    } catch (const Error&) {
      if (!o.skip_invalid) throw;
      if (skipped) ++*skipped;
    }
  };
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".jsonl" || ext == ".json") {
    read_jsonl(path, o.skip_invalid, skipped, add);
    return out;
  }
  TableOptions to;
  to.delimiter = ext == ".csv" ? ',' : '\t';
  to.quotes = ext == ".csv";
  to.skip_invalid = o.skip_invalid;
  const Table table = read_table(path, to, skipped);
  Strings needed = o.user.source_fields;
  if (!o.user.id_field.empty()) needed.push_back(o.user.id_field);
  if (split != "test") needed.push_back(o.user.target_field);
  for (const std::string& f : needed) {
    std::string names;
    for (const std::string& h : table.header) names += (names.empty() ? "" : ", ") + h;
    check(std::find(table.header.begin(), table.header.end(), f) != table.header.end(), path,
          ":1: missing column \"", f, "\" (the header has: ", names, ")");
  }
  for (const TableRow& r : table.rows) {
    json row = json::object();
    for (size_t c = 0; c < table.header.size(); ++c) row[table.header[c]] = r.cells[c];
    add(row, Where{path, r.line});
  }
  return out;
}

}  // namespace

// One row of a user task's fields as load_split formats it (tasks/inputs.cpp); the target may be
// absent, as in a test file.
Example format_user_row(const json& row, const Where& w, const DataOptions& o) {
  return make_example(row, w, "test", 0, o);
}

std::vector<Example> load_user_split(const std::string& split, const DataOptions& o,
                                     int64_t* skipped) {
  const UserTaskOptions& u = o.user;
  check(!u.source_fields.empty(), "user task: no source field given (--source-field)");
  check(!u.target_field.empty(), "user task: no target field given (--target-field)");
  check(split == "train" || split == "validation" || split == "test", "unknown split '", split,
        "' (expected train, validation or test)");
  check(fs::is_directory(o.data_dir), o.data_dir, ": data folder not found");
  auto load = [&](const std::string& s) {
    const std::string path = user_file(s, o);
    std::string names;
    for (const std::string& ext : extensions(u.format))
      names += (names.empty() ? "" : ", ") + s + ext;
    check(!path.empty(), "user task ", s, ": no data file in ", o.data_dir, " (looked for ", names,
          s == "validation" ? " and val.* / dev.*" : "", ")");
    return read_user_file(path, s, o, skipped);
  };
  if (o.paper_splits && split != "train" && user_file("test", o).empty())
    return split_user_rows(split, o.data_seed, o.max_train_samples, load);
  std::vector<Example> rows = load(split);
  if (split == "train")
    rows = subsample_examples(std::move(rows), o.max_train_samples, o.data_seed);
  return rows;
}

}  // namespace compacter::tasks

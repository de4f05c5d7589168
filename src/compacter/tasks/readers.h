// Readers for the files tasks come in: tab-separated (GLUE, QUOTE_NONE like Hugging Face's csv
// reading of them), comma-separated with RFC 4180 quotes (user tasks), and JSON Lines (SuperGLUE,
// Hugging Face `Dataset.to_json()`, user tasks). Every problem is an Error naming the file, the
// 1-based line and what was expected; with `skip_invalid` a malformed row is counted instead.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace compacter::tasks {

// Where a row came from, for error messages: "path:line" (just `file` when line is 0).
struct Where {
  std::string file;
  int64_t line = 0;
  std::string str() const;
};

struct TableRow {
  std::vector<std::string> cells;
  int64_t line = 0;  // 1-based line of the row's first character
};

struct Table {
  std::string file;
  std::vector<std::string> header;  // empty when the file has none
  std::vector<TableRow> rows;
};

struct TableOptions {
  char delimiter = '\t';
  bool quotes = false;     // RFC 4180 double quotes (CSV); false: every delimiter splits
  bool has_header = true;  // the first line names the columns (a UTF-8 BOM is removed)
  int64_t columns = -1;    // expected columns without a header (-1: from the first row)
  std::vector<std::string> column_names;  // for messages when there is no header
  bool skip_invalid = false;
};

// Reads a whole delimited file. Blank lines are ignored (as Python's csv.DictReader does);
// a row with a different number of columns than the header is an error (or skipped, counted in
// *skipped). Throws for a missing or empty file and for invalid UTF-8.
Table read_table(const std::string& path, const TableOptions& options, int64_t* skipped);

// Calls each(object, where) for every non-blank line of a JSON Lines file. Lines that are not a
// JSON object, or hold invalid UTF-8, are errors (or skipped and counted with skip_invalid).
// Throws for a missing or empty file. `each` may throw Error itself; with skip_invalid such
// errors also skip the line.
void read_jsonl(const std::string& path, bool skip_invalid, int64_t* skipped,
                const std::function<void(const nlohmann::json&, const Where&)>& each);

// Field access with messages naming the file, line and field.
const nlohmann::json& field(const nlohmann::json& row, const std::string& name, const Where& w);
std::string string_field(const nlohmann::json& row, const std::string& name, const Where& w);
int64_t int_field(const nlohmann::json& row, const std::string& name, const Where& w);
double number_field(const nlohmann::json& row, const std::string& name, const Where& w);
// A short description of a JSON value's type for messages ("string", "number", "array", ...).
std::string json_kind(const nlohmann::json& v);

}  // namespace compacter::tasks

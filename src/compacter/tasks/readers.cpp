// File readers for the tasks (see readers.h).
#include "compacter/tasks/readers.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/tasks/text.h"

namespace compacter::tasks {

namespace fs = std::filesystem;

std::string Where::str() const {
  return line > 0 ? cat(file, ":", line) : file;
}

namespace {

std::string read_whole(const std::string& path) {
  std::string content = read_file(path);
  check(!content.empty(), path, ": file is empty (expected at least one row)");
  return content;
}

// Lines without their "\n" / "\r\n"; a UTF-8 byte-order mark at the start is removed.
std::vector<std::string> split_lines(std::string content) {
  if (content.rfind("\xEF\xBB\xBF", 0) == 0) content.erase(0, 3);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < content.size()) {
    size_t end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    std::string line = content.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

bool is_blank(const std::string& line) {
  return line.find_first_not_of(" \t\r") == std::string::npos;
}

void check_utf8(const std::string& text, const Where& w) {
  const size_t bad = text::invalid_utf8_offset(text);
  check(bad == std::string::npos, w.str(), ": invalid UTF-8 at byte ", bad + 1,
        " of the line (expected UTF-8 text)");
}

std::vector<std::string> split_plain(const std::string& line, char delimiter) {
  std::vector<std::string> cells;
  size_t start = 0;
  while (true) {
    const size_t end = line.find(delimiter, start);
    if (end == std::string::npos) {
      cells.push_back(line.substr(start));
      break;
    }
    cells.push_back(line.substr(start, end - start));
    start = end + 1;
  }
  return cells;
}

// One RFC 4180 record starting at lines[i]; a quoted cell may span lines (i advances).
std::vector<std::string> split_quoted(const std::vector<std::string>& lines, size_t& i,
                                      char delimiter, const std::string& file) {
  std::vector<std::string> cells;
  std::string cell;
  bool in_quotes = false, was_quoted = false;
  const size_t first = i;
  std::string line = lines[i];
  size_t p = 0;
  while (true) {
    if (p >= line.size()) {
      if (in_quotes) {
        check(i + 1 < lines.size(), file, ":", first + 1,
              ": a quoted field is not closed before the end of the file (expected '\"')");
        cell += '\n';
        line = lines[++i];
        p = 0;
        continue;
      }
      cells.push_back(cell);
      break;
    }
    const char c = line[p];
    if (in_quotes) {
      if (c == '"') {
        if (p + 1 < line.size() && line[p + 1] == '"') {
          cell += '"';
          ++p;
        } else {
          in_quotes = false;
        }
      } else {
        cell += c;
      }
    } else if (c == '"' && cell.empty() && !was_quoted) {
      in_quotes = was_quoted = true;
    } else if (c == delimiter) {
      cells.push_back(cell);
      cell.clear();
      was_quoted = false;
    } else {
      check(!was_quoted, file, ":", i + 1, ": text after a closing quote in column ",
            cells.size() + 1, " (expected a delimiter)");
      cell += c;
    }
    ++p;
  }
  return cells;
}

std::string describe_columns(const std::vector<std::string>& names) {
  if (names.empty()) return "";
  std::string s = " (";
  for (size_t k = 0; k < names.size(); ++k) s += (k ? ", " : "") + names[k];
  return s + ")";
}

}  // namespace

Table read_table(const std::string& path, const TableOptions& o, int64_t* skipped) {
  Table table;
  table.file = path;
  const std::vector<std::string> lines = split_lines(read_whole(path));
  const char* kind = o.delimiter == '\t' ? "tab-separated" : "comma-separated";
  size_t expected = o.columns > 0 ? static_cast<size_t>(o.columns) : 0;
  std::vector<std::string> names = o.column_names;
  bool header_pending = o.has_header;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (is_blank(lines[i])) continue;
    const size_t first = i;
    const Where w{path, static_cast<int64_t>(first + 1)};
    try {
      check_utf8(lines[i], w);
      std::vector<std::string> cells =
          o.quotes ? split_quoted(lines, i, o.delimiter, path) : split_plain(lines[i], o.delimiter);
      if (header_pending) {
        header_pending = false;
        table.header = cells;
        names = cells;
        expected = cells.size();
        continue;
      }
      if (expected == 0) expected = cells.size();
      check(cells.size() == expected, w.str(), ": expected ", expected, " ", kind, " columns",
            describe_columns(names), ", found ", cells.size());
      table.rows.push_back({std::move(cells), w.line});
    } catch (const Error&) {
      if (!o.skip_invalid || header_pending) throw;
      if (skipped) ++*skipped;
    }
  }
  check(!header_pending, path, ": file has no header line (expected column names",
        describe_columns(o.column_names), ")");
  check(!table.rows.empty(), path, ": file has no data rows",
        o.has_header ? " after the header" : "");
  return table;
}

void read_jsonl(const std::string& path, bool skip_invalid, int64_t* skipped,
                const std::function<void(const nlohmann::json&, const Where&)>& each) {
  const std::vector<std::string> lines = split_lines(read_whole(path));
  int64_t seen = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (is_blank(lines[i])) continue;
    ++seen;
    const Where w{path, static_cast<int64_t>(i + 1)};
    try {
      check_utf8(lines[i], w);
      nlohmann::json row;
      try {
        row = nlohmann::json::parse(lines[i]);
      } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range: 1e999
        std::string what = e.what();
        size_t colon = what.find("parse error");
        if (colon == std::string::npos) colon = what.find("number overflow");
        throw Error(cat(w.str(), ": bad JSON (expected one JSON object per line): ",
                        colon == std::string::npos ? what : what.substr(colon)));
      }
      check(row.is_object(), w.str(), ": expected a JSON object, found ", json_kind(row));
      each(row, w);
    } catch (const Error&) {
      if (!skip_invalid) throw;
      if (skipped) ++*skipped;
    }
  }
  check(seen > 0, path, ": file has no rows (expected one JSON object per line)");
}

std::string json_kind(const nlohmann::json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

const nlohmann::json& field(const nlohmann::json& row, const std::string& name, const Where& w) {
  const auto it = row.find(name);
  check(it != row.end(), w.str(), ": missing field \"", name, "\"");
  return *it;
}

std::string string_field(const nlohmann::json& row, const std::string& name, const Where& w) {
  const nlohmann::json& v = field(row, name, w);
  check(v.is_string(), w.str(), ": field \"", name, "\": expected a string, found ", json_kind(v));
  return v.get<std::string>();
}

int64_t int_field(const nlohmann::json& row, const std::string& name, const Where& w) {
  const nlohmann::json& v = field(row, name, w);
  check(v.is_number_integer(), w.str(), ": field \"", name, "\": expected an integer, found ",
        json_kind(v));
  return v.get<int64_t>();
}

double number_field(const nlohmann::json& row, const std::string& name, const Where& w) {
  const nlohmann::json& v = field(row, name, w);
  check(v.is_number(), w.str(), ": field \"", name, "\": expected a number, found ", json_kind(v));
  return v.get<double>();
}

}  // namespace compacter::tasks

// Fuzz target for the readers of task data files (tasks/readers.h): tab-separated (GLUE's, with
// and without a header), comma-separated with RFC 4180 quotes (user tasks) and JSON Lines
// (SuperGLUE, user tasks), strict or with skip_invalid, plus the field accessors on each JSON row.
// The first input byte picks the reader (low 2 bits) and skip_invalid (bit 2); the rest is the
// file, handed over as /proc/self/fd/N of an in-memory file. Beyond "accepted or
// compacter::Error": every row of an accepted table has the header's (or the fixed) column count,
// rows come in increasing line order, and every accepted JSON Lines row is an object.
#include <string>

#include "compacter/core/error.h"
#include "compacter/tasks/readers.h"
#include "fuzz_target.h"
#include "memory_file.h"

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  using namespace compacter::tasks;
  if (size == 0) return false;
  const int mode = data[0] & 3;
  const bool skip_invalid = (data[0] & 4) != 0;
  MemoryFile file(data + 1, size - 1);
  int64_t skipped = 0;
  try {
    if (mode == 3) {
      int64_t rows = 0;
      read_jsonl(file.path(), skip_invalid, &skipped,
                 [&](const nlohmann::json& row, const Where& w) {
                   if (!row.is_object()) __builtin_trap();
                   ++rows;
                   // What task readers do with a row; each may refuse it with Error (then skipped).
                   if (row.contains("label")) (void)int_field(row, "label", w);
                   if (row.contains("text")) (void)string_field(row, "text", w);
                   if (row.contains("score")) (void)number_field(row, "score", w);
                 });
      if (rows == 0 && !skip_invalid) __builtin_trap();
      return true;
    }
    TableOptions o;
    o.delimiter = mode == 2 ? ',' : '\t';
    o.quotes = mode == 2;
    o.has_header = mode != 1;
    o.columns = mode == 1 ? 3 : -1;
    o.skip_invalid = skip_invalid;
    const Table t = read_table(file.path(), o, &skipped);
    const size_t columns = o.has_header ? t.header.size() : 3;
    int64_t last_line = 0;
    for (const TableRow& r : t.rows) {
      if (r.cells.size() != columns || r.line <= last_line) __builtin_trap();
      last_line = r.line;
    }
    if (t.rows.empty()) __builtin_trap();
    return true;
  } catch (const compacter::Error&) {
    return false;
  }
}

COMPACTER_FUZZ_ENTRY_POINT

// Fuzz target for what `compacter report` reads back from finished runs (train/report.h,
// plot/figures.h): a run's results.json and, for `report --plot`, its metrics.jsonl. The first
// input byte picks the metric (--metric: the runs' first, "accuracy", "f1" or "pearson"); the rest
// is results.json, up to a NUL byte, and after it metrics.jsonl. Both are written into one
// temporary run folder (report reads folders), then the report's rows and table are made
// (report_rows, format_report) and, when a metrics.jsonl was given, every figure of
// `report --plot` (report_figures: Figures 1 and 4, the loss and validation curves); without one,
// Figures 1 and 4 from the rows. Beyond "accepted or compacter::Error": the table has a line per
// run, and every figure is drawn with finite coordinates or skipped with a reason.
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "compacter/plot/figures.h"
#include "compacter/train/report.h"
#include "figure_check.h"
#include "fuzz_target.h"

namespace {

// One temporary run folder for the process, removed at exit.
struct RunFolder {
  std::string path;
  RunFolder() {
    std::string pattern = (std::filesystem::temp_directory_path() / "compacter-fuzz-XXXXXX");
    if (!mkdtemp(pattern.data())) __builtin_trap();
    path = pattern + "/run";
    std::filesystem::create_directory(path);
  }
  ~RunFolder() {
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(path).parent_path(), ec);
  }
  void write(const std::string& name, const char* data, size_t size) const {
    std::ofstream out(path + "/" + name, std::ios::binary | std::ios::trunc);
    out.write(data, static_cast<std::streamsize>(size));
    if (!out) __builtin_trap();
  }
};

}  // namespace

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  if (size == 0) return false;
  static const RunFolder run;
  static const char* const kMetrics[] = {"", "accuracy", "f1", "pearson"};
  const std::string metric = kMetrics[data[0] & 3];
  const char* text = reinterpret_cast<const char*>(data + 1);
  const std::string rest(text, size - 1);
  const size_t nul = rest.find('\0');
  run.write("results.json", text, nul == std::string::npos ? rest.size() : nul);
  std::error_code ec;
  std::filesystem::remove(run.path + "/metrics.jsonl", ec);
  if (nul != std::string::npos) run.write("metrics.jsonl", text + nul + 1, rest.size() - nul - 1);
  return compacter_fuzz_accepted_unless_error([&] {
    const nlohmann::json rows = compacter::train::report_rows({run.path}, metric);
    if (!rows.is_array() || rows.size() != 1) __builtin_trap();
    const std::string table = compacter::train::format_report(rows);
    if (std::count(table.begin(), table.end(), '\n') < 2) __builtin_trap();
    if (nul == std::string::npos) {
      check_figure(compacter::plot::figure1(rows));
      check_figure(compacter::plot::figure4(rows));
      return;
    }
    for (const auto& figure : compacter::plot::report_figures({run.path}, metric))
      check_figure(figure);
  });
}

COMPACTER_FUZZ_ENTRY_POINT

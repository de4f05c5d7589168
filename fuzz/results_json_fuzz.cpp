// Fuzz target for what `compacter report` reads back from finished runs (train/report.h,
// plot/figures.h): a run's results.json and, for `report --plot`, its metrics.jsonl. The first
// input byte picks the metric (--metric: the runs' first, "accuracy", "f1" or "pearson"); the rest
// is results.json, up to a NUL byte, and after it metrics.jsonl. Both are written into one
// temporary run folder (report reads folders), then the report's rows and table are made
// (report_rows, format_report) and, when a metrics.jsonl was given, every figure of
// `report --plot` (report_figures: Figures 1 and 4, the loss and validation curves); without one,
// Figures 1 and 4 from the rows. Beyond "accepted or compacter::Error": the table has a line per
// run, and every figure is drawn with finite coordinates or skipped with a reason.
#include <algorithm>
#include <filesystem>
#include <string>

#include "compacter/plot/figures.h"
#include "compacter/train/report.h"
#include "figure_check.h"
#include "fuzz_target.h"
#include "temp_folder.h"

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  if (size == 0) return false;
  static const TempFolder folder;  // report reads run folders: FOLDER/run
  static const std::string run = [] {
    std::filesystem::create_directory(folder.path + "/run");
    return folder.path + "/run";
  }();
  static const char* const kMetrics[] = {"", "accuracy", "f1", "pearson"};
  const std::string metric = kMetrics[data[0] & 3];
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t nul = rest.find('\0');
  const bool has_metrics = nul != std::string::npos;
  folder.put("run/results.json", rest.substr(0, nul));
  folder.put("run/metrics.jsonl", has_metrics ? rest.substr(nul + 1) : "", has_metrics);
  return compacter_fuzz_accepted_unless_error([&] {
    const nlohmann::json rows = compacter::train::report_rows({run}, metric);
    if (!rows.is_array() || rows.size() != 1) __builtin_trap();
    const std::string table = compacter::train::format_report(rows);
    if (std::count(table.begin(), table.end(), '\n') < 2) __builtin_trap();
    if (!has_metrics) {
      check_figure(compacter::plot::figure1(rows));
      check_figure(compacter::plot::figure4(rows));
      return;
    }
    for (const auto& figure : compacter::plot::report_figures({run}, metric)) check_figure(figure);
  });
}

COMPACTER_FUZZ_ENTRY_POINT

// Fuzz target for a run's metrics.jsonl (train/metrics_file.h), as `--resume` and `report --plot`
// read it: the input is the file, handed over as an in-memory file, read by read_metrics_file;
// an accepted file's records are then written back as `--resume` writes them (one dump a line)
// and drawn as `report --plot` draws them (plot/figures.h: the training-loss and the
// validation-metric curves of one run; the first input byte picks the validation metric: the
// records' first, "accuracy" or "f1"). Beyond "accepted or compacter::Error": every accepted
// record is a JSON object whose "type", when present, is a string; every figure is either drawn
// (an SVG document with finite coordinates) or skipped with a reason.
#include <string>
#include <vector>

#include "compacter/plot/figures.h"
#include "compacter/train/metrics_file.h"
#include "figure_check.h"
#include "fuzz_target.h"
#include "memory_file.h"

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  if (size == 0) return false;
  static const char* const kMetrics[] = {"", "accuracy", "f1", ""};
  const std::string metric = kMetrics[data[0] & 3];
  MemoryFile file(data + 1, size - 1);
  return compacter_fuzz_accepted_unless_error([&] {
    const std::vector<nlohmann::json> records = compacter::train::read_metrics_file(file.path());
    std::string written;
    for (const nlohmann::json& r : records) {
      if (!r.is_object()) __builtin_trap();
      if (r.contains("type") && !r["type"].is_string()) __builtin_trap();
      written += r.dump() + "\n";  // what --resume writes back (train/loop.cpp)
    }
    const nlohmann::json rows = nlohmann::json::array({{{"run", "fuzz-run"}}});
    const std::vector<std::vector<nlohmann::json>> per_run = {records};
    check_figure(compacter::plot::loss_curves(rows, per_run));
    check_figure(compacter::plot::validation_curves(rows, per_run, metric));
  });
}

COMPACTER_FUZZ_ENTRY_POINT

// The figures of `compacter report --plot DIR` and `compacter bench --plot FILE` (docs/plots.md),
// drawn from the files the runs already write: each run's results.json (through
// train::report_rows) and metrics.jsonl, and the bench's --json document. A figure without data
// is not drawn; it says why instead.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace compacter::plot {

struct Figure {
  std::string file;     // e.g. "figure1.svg"
  std::string what;     // one line, e.g. "Figure 1: score vs % of trained parameters"
  std::string svg;      // empty when skipped
  std::string skipped;  // why it was not drawn (empty when drawn)
};

// A run's records from its metrics.jsonl (one JSON object a line); throws Error naming the file
// (and line) when it is missing or a line is not a JSON object.
std::vector<nlohmann::json> read_metrics_records(const std::string& run_dir);

// The score a report row is plotted with: its test score, else its validation score, else NaN.
double row_score(const nlohmann::json& row);

// The paper's Figure 1: score against the share of the backbone's parameters trained (log x),
// one point per method (the mean over its runs). `rows`: train::report_rows.
Figure figure1(const nlohmann::json& rows);

// The paper's Figure 4 (low-resource): score against the training-set size (log x), one line per
// method (the mean over its runs at each size); only runs with max_train_samples.
Figure figure4(const nlohmann::json& rows);

// Training loss against step, one line per run. `records[i]`: the metrics.jsonl of rows[i].
Figure loss_curves(const nlohmann::json& rows,
                   const std::vector<std::vector<nlohmann::json>>& records);

// The validation metric against step (the evaluations during training), one line per run;
// `metric` empty: each run's first.
Figure validation_curves(const nlohmann::json& rows,
                         const std::vector<std::vector<nlohmann::json>>& records,
                         const std::string& metric);

// The paper's Table 3 as bars: time per step and peak memory of each method as a percentage of
// full fine-tuning's, from `compacter bench --json`.
Figure table3_bars(const nlohmann::json& bench);

// `compacter bench --inference --json`: tokens/s against batch size, one line per method x
// dtype x search.
Figure inference_throughput(const nlohmann::json& bench);

// The figure of a bench document: inference_throughput for --inference's, table3_bars for the
// training bench's; throws Error when `bench` is neither.
Figure bench_figure(const nlohmann::json& bench);

// Reads a saved `compacter bench --json` document; throws Error naming `path`.
nlohmann::json read_bench_json(const std::string& path);

// All figures of `report --plot` for these run directories: Figure 1, Figure 4, loss and
// validation curves. Reads every input first; throws Error naming the bad file.
std::vector<Figure> report_figures(const std::vector<std::string>& runs, const std::string& metric);

// Writes each drawn figure to dir/FILE atomically (creating `dir`); throws Error naming `dir`
// when it cannot be created or written.
void write_figures(const std::vector<Figure>& figures, const std::string& dir);

}  // namespace compacter::plot

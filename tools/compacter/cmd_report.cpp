// `compacter report RUN_DIR...`: one table comparing finished `compacter train` runs
// (train/report.h); --json prints the rows; --plot DIR also writes the figures (plot/figures.h).
#include <iostream>

#include "commands.h"
#include "compacter/plot/figures.h"
#include "compacter/train/report.h"

namespace compacter::cli {

namespace {

struct ReportOptions {
  std::vector<std::string> runs;
  std::string metric;  // empty: the first metric of each run's test scores
  bool json = false;
  std::string plot_dir;  // non-empty: write the SVG figures there
};

// Says on stderr which figures were written and which skipped, and why.
void tell_figures(const std::vector<plot::Figure>& figures, const std::string& dir) {
  for (const plot::Figure& f : figures)
    if (f.svg.empty())
      std::cerr << "skipped " << f.file << " (" << f.what << "): " << f.skipped << "\n";
    else
      std::cerr << "wrote " << dir << "/" << f.file << " (" << f.what << ")\n";
}

void run_report(const ReportOptions& o) {
  const nlohmann::json rows = train::report_rows(o.runs, o.metric);
  // Every input is read and every figure drawn before anything is printed or written.
  std::vector<plot::Figure> figures;
  if (!o.plot_dir.empty()) figures = plot::report_figures(o.runs, o.metric);
  if (!o.json)
    std::cout << train::format_report(rows);
  else
    for (const auto& row : rows) std::cout << row.dump() << "\n";
  if (o.plot_dir.empty()) return;
  plot::write_figures(figures, o.plot_dir);
  tell_figures(figures, o.plot_dir);
}

}  // namespace

void add_report_command(CLI::App& app) {
  auto o = std::make_shared<ReportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "report", "Compare finished training runs (their results.json) in one table");
  cmd->add_option("runs", o->runs, "run directories of `compacter train`")->required();
  cmd->add_option("--metric", o->metric, "the score to show (default: each run's first)");
  cmd->add_flag("--json", o->json, "one JSON object per run instead of the table");
  cmd->add_option("--plot", o->plot_dir,
                  "also write standalone SVG figures to DIR (created): figure1.svg (score vs % "
                  "of trained parameters), figure4.svg (score vs training-set size, low-resource "
                  "runs), loss.svg and validation.svg (metrics.jsonl); docs/plots.md");
  cmd->callback([o] { run_report(*o); });
}

}  // namespace compacter::cli

// `compacter report RUN_DIR...`: one table comparing finished `compacter train` runs
// (train/report.h); --json prints the rows.
#include <iostream>

#include "commands.h"
#include "compacter/train/report.h"

namespace compacter::cli {

namespace {

struct ReportOptions {
  std::vector<std::string> runs;
  std::string metric;  // empty: the first metric of each run's test scores
  bool json = false;
};

void run_report(const ReportOptions& o) {
  const nlohmann::json rows = train::report_rows(o.runs, o.metric);
  if (!o.json) {
    std::cout << train::format_report(rows);
    return;
  }
  for (const auto& row : rows) std::cout << row.dump() << "\n";
}

}  // namespace

void add_report_command(CLI::App& app) {
  auto o = std::make_shared<ReportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "report", "Compare finished training runs (their results.json) in one table");
  cmd->add_option("runs", o->runs, "run directories of `compacter train`")->required();
  cmd->add_option("--metric", o->metric, "the score to show (default: each run's first)");
  cmd->add_flag("--json", o->json, "one JSON object per run instead of the table");
  cmd->callback([o] { run_report(*o); });
}

}  // namespace compacter::cli

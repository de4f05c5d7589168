// `compacter report RUN_DIR...`: one table comparing finished `compacter train` runs, read from
// their results.json: method, base model, trainable parameters (and % of the backbone), adapter
// file size, test and validation scores, training time and throughput. --json prints the rows.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "compacter/core/error.h"

namespace compacter::cli {

namespace {

struct ReportOptions {
  std::vector<std::string> runs;
  std::string metric;  // empty: the first metric of each run's test scores
  bool json = false;
};

nlohmann::json read_results(const std::string& run) {
  const std::string path = run + "/results.json";
  check(std::filesystem::is_regular_file(path), "cannot open ", path, " (is ", run,
        " a finished `compacter train` run?)");
  return read_json_file(path);
}

std::string human_bytes(double bytes) {
  char buf[32];
  if (bytes >= 1e6)
    std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.1f KB", bytes / 1e3);
  return buf;
}

// The chosen metric of one split's scores, or NaN when absent.
double split_metric(const nlohmann::json& metrics, const std::string& split,
                    const std::string& wanted, std::string& name) {
  if (!metrics.contains(split) || !metrics[split].is_object() || metrics[split].empty())
    return std::nan("");
  const auto& m = metrics[split];
  if (!wanted.empty()) {
    check(m.contains(wanted), "metric \"", wanted, "\" not in the ", split, " scores (", m.dump(),
          ")");
    name = wanted;
    return m[wanted].get<double>();
  }
  name = m.begin().key();
  return m.begin().value().get<double>();
}

void run_report(const ReportOptions& o) {
  nlohmann::json rows = nlohmann::json::array();
  for (const std::string& run : o.runs) {
    const nlohmann::json r = read_results(run);
    try {
      std::string test_name, validation_name;
      const double test = split_metric(r.at("metrics"), "test", o.metric, test_name);
      const double validation =
          split_metric(r.at("metrics"), "validation", o.metric, validation_name);
      rows.push_back(
          {{"run", std::filesystem::path(run).filename().string()},
           {"method", r.at("method")},
           {"model", r.at("config").at("model")},
           {"trainable", r.at("parameters").at("trainable")},
           {"percent_of_backbone", r.at("parameters").at("percent_of_backbone")},
           {"adapter_bytes", r.at("adapter_bytes")},
           {"metric", test_name.empty() ? validation_name : test_name},
           {"test", std::isnan(test) ? nlohmann::json() : nlohmann::json(test)},
           {"validation", std::isnan(validation) ? nlohmann::json() : nlohmann::json(validation)},
           {"train_seconds", r.at("time").at("train_seconds")},
           {"examples_per_second", r.at("time").at("examples_per_second")}});
    } catch (const nlohmann::json::exception& e) {
      throw Error(cat(run, "/results.json: missing or mistyped field (", e.what(), ")"));
    }
  }
  if (o.json) {
    for (const auto& row : rows) std::cout << row.dump() << "\n";
    return;
  }
  std::printf("%-24s %-12s %12s %9s %10s %9s %9s %8s %7s\n", "run", "method", "trainable", "% base",
              "adapter", "test", "valid", "train s", "ex/s");
  for (const auto& row : rows) {
    auto score = [](const nlohmann::json& v) {
      char buf[16];
      if (v.is_null()) return std::string("-");
      std::snprintf(buf, sizeof buf, "%.1f", v.get<double>());
      return std::string(buf);
    };
    std::printf("%-24s %-12s %12lld %8.3f%% %10s %9s %9s %8.0f %7.1f\n",
                row["run"].get<std::string>().c_str(), row["method"].get<std::string>().c_str(),
                static_cast<long long>(row["trainable"].get<int64_t>()),
                row["percent_of_backbone"].get<double>(),
                human_bytes(row["adapter_bytes"].get<double>()).c_str(), score(row["test"]).c_str(),
                score(row["validation"]).c_str(), row["train_seconds"].get<double>(),
                row["examples_per_second"].get<double>());
  }
  if (!rows.empty())
    std::printf("scores: %s (x100); %% base: trainable parameters over the backbone's\n",
                rows[0]["metric"].get<std::string>().c_str());
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

// `compacter report`: see report.h.
#include "compacter/train/report.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "compacter/core/error.h"
#include "compacter/core/units.h"

namespace compacter::train {

namespace {

nlohmann::json read_results(const std::string& run) {
  const std::string path = run + "/results.json";
  std::ifstream in(path);
  check(in.good(), "cannot open ", path, " (is ", run, " a finished `compacter train` run?)");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(path, ": not valid JSON (", e.what(), ")"));
  }
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

nlohmann::json number_or_null(double v) {
  return std::isnan(v) ? nlohmann::json() : nlohmann::json(v);
}

std::string cell(const nlohmann::json& v, const char* format) {
  if (v.is_null()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, format, v.get<double>());
  return buf;
}

}  // namespace

nlohmann::json report_rows(const std::vector<std::string>& runs, const std::string& metric) {
  nlohmann::json rows = nlohmann::json::array();
  for (const std::string& run : runs) {
    const nlohmann::json r = read_results(run);
    try {
      std::string test_name, validation_name;
      const double test = split_metric(r.at("metrics"), "test", metric, test_name);
      const double validation =
          split_metric(r.at("metrics"), "validation", metric, validation_name);
      const nlohmann::json& time = r.at("time");
      // Runs from before evaluation time was measured apart have no evaluation_seconds; their
      // train_seconds included the evaluations.
      const bool split_times = time.contains("evaluation_seconds");
      // The task's name (a user task: its own name) and the low-resource subset's size (null:
      // the whole training set), for the paper's Figure 4 (plot/figure4.h).
      const nlohmann::json& data = r.at("config").value("data", nlohmann::json::object());
      std::string task = r.value("task", std::string());
      if (task == "user" && data.contains("user")) task = data["user"].value("name", task);
      const int64_t samples = data.value("max_train_samples", int64_t{-1});
      rows.push_back(
          {{"run", std::filesystem::path(run).filename().string()},
           {"method", r.at("method")},
           {"model", r.at("config").at("model")},
           {"task", task},
           {"max_train_samples", samples > 0 ? nlohmann::json(samples) : nlohmann::json()},
           {"trainable", r.at("parameters").at("trainable")},
           {"percent_of_backbone", r.at("parameters").at("percent_of_backbone")},
           {"adapter_file_bytes", r.at("adapter_bytes")},
           {"metric", test_name.empty() ? validation_name : test_name},
           {"test", number_or_null(test)},
           {"validation", number_or_null(validation)},
           {"train_seconds", split_times ? time.at("train_seconds") : nlohmann::json()},
           {"evaluation_seconds", split_times ? time.at("evaluation_seconds") : nlohmann::json()},
           {"examples_per_second",
            split_times ? time.at("examples_per_second") : nlohmann::json()}});
    } catch (const nlohmann::json::exception& e) {
      throw Error(cat(run, "/results.json: missing or mistyped field (", e.what(), ")"));
    }
  }
  return rows;
}

std::string format_report(const nlohmann::json& rows) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "%-24s %-12s %12s %9s %12s %7s %7s %8s %7s %9s\n", "run",
                "method", "trainable", "% base", "adapter file", "test", "valid", "train s",
                "eval s", "train ex/s");
  out += line;
  for (const auto& row : rows) {
    std::snprintf(line, sizeof line, "%-24s %-12s %12lld %8.3f%% %12s %7s %7s %8s %7s %9s\n",
                  row["run"].get<std::string>().c_str(), row["method"].get<std::string>().c_str(),
                  static_cast<long long>(row["trainable"].get<int64_t>()),
                  row["percent_of_backbone"].get<double>(),
                  human_bytes(row["adapter_file_bytes"].get<double>()).c_str(),
                  cell(row["test"], "%.1f").c_str(), cell(row["validation"], "%.1f").c_str(),
                  cell(row["train_seconds"], "%.0f").c_str(),
                  cell(row["evaluation_seconds"], "%.0f").c_str(),
                  cell(row["examples_per_second"], "%.1f").c_str());
    out += line;
  }
  if (!rows.empty())
    out += "scores: " + rows[0]["metric"].get<std::string>() +
           " (x100); % base: trainable parameters as a share of the backbone's parameters; "
           "adapter file: size of best_adapter/adapter_model.safetensors; train s and train "
           "ex/s: the training steps only; eval s: the evaluations during training\n";
  return out;
}

}  // namespace compacter::train

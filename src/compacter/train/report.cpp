// `compacter report`: see report.h.
#include "compacter/train/report.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "compacter/core/error.h"
#include "compacter/core/json_field.h"
#include "compacter/core/json_file.h"
#include "compacter/core/units.h"

namespace compacter::train {

namespace {

nlohmann::json read_results(const std::string& run) {
  const std::string path = run + "/results.json";
  check(std::ifstream(path).good(), "cannot open ", path, " (is ", run,
        " a finished `compacter train` run?)");
  return read_json_document(path);
}

// The chosen metric of one split's scores (`metrics[split]`, an object of numbers), or NaN when
// the split has none; `name` is set to the metric's name. Errors name `where`.
double split_metric(const nlohmann::json& metrics, const std::string& split,
                    const std::string& wanted, std::string& name, const std::string& where) {
  const nlohmann::json& m = object_field(metrics, split, where + ": \"metrics\"", true);
  if (m.empty()) return std::nan("");
  name = wanted.empty() ? m.begin().key() : wanted;
  check(m.contains(name), where, ": metric \"", name, "\" not in the ", split, " scores (",
        m.dump(), ")");
  return required_field<double>(m, name, cat(where, ": \"metrics\": ", split));
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
    const std::string where = run + "/results.json";
    check(r.is_object(), where, ": expected a JSON object, got a JSON ", r.type_name());
    std::string test_name, validation_name;
    const nlohmann::json& metrics = object_field(r, "metrics", where);
    const double test = split_metric(metrics, "test", metric, test_name, where);
    const double validation = split_metric(metrics, "validation", metric, validation_name, where);
    // Runs from before evaluation time was measured apart have no evaluation_seconds; their
    // train_seconds included the evaluations.
    const nlohmann::json& time = object_field(r, "time", where);
    const std::string time_where = where + ": \"time\"";
    const bool split_times = time.contains("evaluation_seconds");
    const auto seconds = [&](const char* key) {
      return split_times ? nlohmann::json(required_field<double>(time, key, time_where))
                         : nlohmann::json();
    };
    // The task's name (a user task: its own name) and the low-resource subset's size (null:
    // the whole training set), for the paper's Figure 4 (plot/figure4.h).
    const nlohmann::json& config = object_field(r, "config", where);
    const std::string config_where = where + ": \"config\"";
    const nlohmann::json& data = object_field(config, "data", config_where, true);
    const std::string data_where = config_where + ": \"data\"";
    std::string task = field_or(r, "task", "", where);
    if (task == "user")
      task = field_or(object_field(data, "user", data_where, true), "name", task,
                      data_where + ": \"user\"");
    const int64_t samples = field_or<int64_t>(data, "max_train_samples", -1, data_where);
    const nlohmann::json& parameters = object_field(r, "parameters", where);
    const std::string parameters_where = where + ": \"parameters\"";
    const int64_t trainable = required_field<int64_t>(parameters, "trainable", parameters_where);
    check(trainable >= 0, parameters_where, ": \"trainable\" must not be negative");
    const int64_t adapter_bytes = required_field<int64_t>(r, "adapter_bytes", where);
    check(adapter_bytes >= 0, where, ": \"adapter_bytes\" must not be negative");
    rows.push_back({{"run", std::filesystem::path(run).filename().string()},
                    {"method", required_field<std::string>(r, "method", where)},
                    {"model", required_field<std::string>(config, "model", config_where)},
                    {"task", task},
                    {"max_train_samples", samples > 0 ? nlohmann::json(samples) : nlohmann::json()},
                    {"trainable", trainable},
                    {"percent_of_backbone",
                     required_field<double>(parameters, "percent_of_backbone", parameters_where)},
                    {"adapter_file_bytes", adapter_bytes},
                    {"metric", test_name.empty() ? validation_name : test_name},
                    {"test", number_or_null(test)},
                    {"validation", number_or_null(validation)},
                    {"train_seconds", seconds("train_seconds")},
                    {"evaluation_seconds", seconds("evaluation_seconds")},
                    {"examples_per_second", seconds("examples_per_second")}});
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

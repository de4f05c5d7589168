// Figures from `compacter bench --json` (figures.h): the paper's Table 3 as bars (time per step
// and peak memory relative to full fine-tuning) and the inference bench's tokens/s against batch
// size.
#include <cmath>
#include <cstdio>
#include <map>

#include "compacter/core/error.h"
#include "compacter/core/json_field.h"
#include "compacter/core/json_file.h"
#include "compacter/core/units.h"
#include "compacter/plot/figures.h"
#include "compacter/plot/svg.h"

namespace compacter::plot {

using nlohmann::json;

namespace {

std::string setting(const json& doc, const char* key) {
  if (!doc.contains("settings") || !doc["settings"].contains(key)) return "?";
  const json& v = doc["settings"][key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f s", s);
  return buf;
}

}  // namespace

Figure table3_bars(const json& bench) {
  Figure f{"table3.svg", "Table 3: time per step and peak memory relative to full fine-tuning", "",
           ""};
  // The methods that ran (no "error", a time per step); fields of the wrong type are refused.
  struct Row {
    std::string method;
    double seconds = NAN, memory = NAN;
  };
  const Row* full = nullptr;
  std::vector<Row> rows;
  const json& methods = bench.at("methods");
  for (size_t i = 0; i < methods.size(); ++i) {
    const json& r = methods[i];
    const std::string where = cat("bench document: \"methods\"[", i, "]");
    check(r.is_object(), where, ": expected a JSON object, got a JSON ", r.type_name());
    if (r.contains("error")) continue;
    const double seconds = field_or<double>(r, "seconds_per_step", NAN, where);
    if (std::isnan(seconds)) continue;
    check(seconds >= 0, where, ": \"seconds_per_step\" must not be negative");
    rows.push_back({required_field<std::string>(r, "method", where), seconds,
                    field_or<double>(r, "peak_memory_bytes", NAN, where)});
  }
  for (const Row& r : rows)
    if (r.method == "full") full = &r;
  if (!full) {
    f.skipped = "no successful \"full\" method in the bench to compare to (--methods with full)";
    return f;
  }
  if (!(full->seconds > 0)) {
    f.skipped = "full fine-tuning's time per step is 0: nothing to compare to";
    return f;
  }
  BarChart c;
  c.title = "Time per step and peak memory (Table 3)";
  const double t0 = full->seconds, m0 = full->memory;
  const bool has_m0 = std::isfinite(m0) && m0 > 0;
  c.note = cat(setting(bench, "model_config"), ", batch ", setting(bench, "batch"), ", ",
               setting(bench, "dtype"), " on ", setting(bench, "device"), "; full: ", seconds(t0),
               "/step", has_m0 ? ", " + human_bytes(m0) + " peak" : std::string());
  BarSeries time{"time per step", {}}, memory{"peak memory", {}};
  bool any_memory = false;
  std::vector<double> all = {100.0};
  for (const Row& r : rows) {
    c.categories.push_back(r.method);
    time.values.push_back(100.0 * r.seconds / t0);
    const bool has = has_m0 && std::isfinite(r.memory);
    memory.values.push_back(has ? 100.0 * r.memory / m0 : NAN);
    any_memory = any_memory || has;
    all.push_back(time.values.back());
    if (has) all.push_back(memory.values.back());
  }
  c.series.push_back(time);
  if (any_memory) c.series.push_back(memory);
  c.x_label = "method";
  c.y = linear_axis(all, "% of full fine-tuning (lower is better)", true);
  c.reference = 100;
  c.reference_label = "full = 100%";
  f.svg = render_bars(c);
  return f;
}

Figure inference_throughput(const json& bench) {
  Figure f{"inference.svg", "inference: tokens/s vs batch size", "", ""};
  std::vector<std::string> order;
  std::map<std::string, std::map<double, double>> lines;  // name -> batch -> tokens/s
  std::vector<double> batches, rates;
  const json& configurations = bench.at("configurations");
  check(configurations.is_array(), "bench document: \"configurations\" must be a JSON array");
  for (size_t i = 0; i < configurations.size(); ++i) {
    const json& r = configurations[i];
    const std::string where = cat("bench document: \"configurations\"[", i, "]");
    check(r.is_object(), where, ": expected a JSON object, got a JSON ", r.type_name());
    if (r.contains("error")) continue;
    const double t = field_or<double>(r, "tokens_per_second", NAN, where);
    if (std::isnan(t)) continue;
    const auto method = required_field<std::string>(r, "method", where);  // in this order
    const auto dtype = required_field<std::string>(r, "dtype", where);
    const std::string name =
        cat(method, " ", dtype, " ", required_field<std::string>(r, "search", where));
    const double b = required_field<double>(r, "batch", where);
    check(b >= 1, where, ": \"batch\" must be at least 1, got ", b);
    if (!lines.count(name)) order.push_back(name);
    lines[name][b] = t;
    batches.push_back(b), rates.push_back(t);
  }
  if (order.empty()) {
    f.skipped = "no successful configuration in the inference bench";
    return f;
  }
  XYChart c;
  c.title = "Generation throughput vs batch size";
  const std::string config = setting(bench, "model_config");
  c.note = cat(config.empty() ? setting(bench, "model") : config, ", source ",
               setting(bench, "source_len"), " tokens, ", setting(bench, "max_new_tokens"),
               " new tokens, on ", setting(bench, "device"));
  for (const std::string& name : order) {
    Series s;
    s.name = name;
    for (const auto& [b, t] : lines[name]) s.x.push_back(b), s.y.push_back(t);
    c.series.push_back(std::move(s));
  }
  c.x = log_axis(batches, "batch size (requests per generate call, log scale)", batches);
  c.y = linear_axis(rates, "generated tokens per second", true);
  f.svg = render_xy(c);
  return f;
}

Figure bench_figure(const json& bench) {
  check(bench.is_object(), "not a `compacter bench --json` document (not a JSON object)");
  try {
    if (bench.value("kind", "") == "inference") return inference_throughput(bench);
    check(bench.contains("methods") && bench["methods"].is_array(),
          "not a `compacter bench --json` document (no \"methods\" nor \"kind\": \"inference\")");
    return table3_bars(bench);
  } catch (const json::exception& e) {
    throw Error(cat("bench document: missing or mistyped field (", e.what(), ")"));
  }
}

json read_bench_json(const std::string& path) {
  return read_json_document(path);
}

}  // namespace compacter::plot

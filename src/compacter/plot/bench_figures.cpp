// Figures from `compacter bench --json` (figures.h): the paper's Table 3 as bars (time per step
// and peak memory relative to full fine-tuning) and the inference bench's tokens/s against batch
// size.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>

#include "compacter/core/error.h"
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
  const json* full = nullptr;
  std::vector<const json*> rows;
  for (const json& r : bench.at("methods")) {
    if (r.contains("error") || !r.value("seconds_per_step", json()).is_number()) continue;
    rows.push_back(&r);
    if (r["method"] == "full") full = &r;
  }
  if (!full) {
    f.skipped = "no successful \"full\" method in the bench to compare to (--methods with full)";
    return f;
  }
  BarChart c;
  c.title = "Time per step and peak memory (Table 3)";
  const double t0 = (*full)["seconds_per_step"].get<double>();
  const json& m0 = (*full)["peak_memory_bytes"];
  c.note =
      cat(setting(bench, "model_config"), ", batch ", setting(bench, "batch"), ", ",
          setting(bench, "dtype"), " on ", setting(bench, "device"), "; full: ", seconds(t0),
          "/step", m0.is_number() ? ", " + human_bytes(m0.get<double>()) + " peak" : std::string());
  BarSeries time{"time per step", {}}, memory{"peak memory", {}};
  bool any_memory = false;
  std::vector<double> all = {100.0};
  for (const json* r : rows) {
    c.categories.push_back((*r)["method"].get<std::string>());
    time.values.push_back(100.0 * (*r)["seconds_per_step"].get<double>() / t0);
    const json& m = (*r)["peak_memory_bytes"];
    const bool has = m.is_number() && m0.is_number() && m0.get<double>() > 0;
    memory.values.push_back(has ? 100.0 * m.get<double>() / m0.get<double>() : NAN);
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
  for (const json& r : bench.at("configurations")) {
    if (r.contains("error") || !r.value("tokens_per_second", json()).is_number()) continue;
    const std::string name = cat(r["method"].get<std::string>(), " ", r["dtype"].get<std::string>(),
                                 " ", r["search"].get<std::string>());
    if (!lines.count(name)) order.push_back(name);
    const double b = r["batch"].get<double>(), t = r["tokens_per_second"].get<double>();
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
  std::ifstream in(path);
  check(in.good(), "cannot open ", path);
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(cat(path, ": not valid JSON (", e.what(), ")"));
  }
}

}  // namespace compacter::plot

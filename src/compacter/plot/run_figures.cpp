// Figures from finished training runs (figures.h): the paper's Figure 1 (score vs % of trained
// parameters), Figure 4 (low-resource: score vs training-set size), and the loss and
// validation-metric curves of metrics.jsonl.
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "compacter/core/error.h"
#include "compacter/core/json_field.h"
#include "compacter/plot/figures.h"
#include "compacter/plot/svg.h"
#include "compacter/train/metrics_file.h"

namespace compacter::plot {

using nlohmann::json;

namespace {

// Names in order of first appearance, with the values given under each.
template <class V>
struct Groups {
  std::vector<std::string> order;
  std::map<std::string, std::vector<V>> values;
  void add(const std::string& name, V v) {
    if (!values.count(name)) order.push_back(name);
    values[name].push_back(v);
  }
};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / v.size();
}

// "accuracy on the test set (x100)" for the rows' scores; mixed metrics or splits say so.
std::string score_label(const std::vector<const json*>& rows) {
  std::set<std::string> metrics;
  bool all_test = true;
  for (const json* r : rows) {
    metrics.insert((*r)["metric"].get<std::string>());
    all_test = all_test && (*r)["test"].is_number();
  }
  const std::string metric = metrics.size() == 1 ? *metrics.begin() : "score";
  return metric + (all_test ? " on the test set" : " (test set, else validation)") + " (x100)";
}

// "3 runs of rte, sst2" for a note.
std::string runs_note(const std::vector<const json*>& rows) {
  std::set<std::string> tasks;
  for (const json* r : rows) tasks.insert(r->value("task", std::string("?")));
  std::string list;
  for (const std::string& t : tasks) list += (list.empty() ? "" : ", ") + t;
  return cat(rows.size(), rows.size() == 1 ? " run" : " runs", " of ", list);
}

// The name a run is grouped under: its method, or "METHOD on MODEL" (the model folder's name)
// when the rows use more than one base model.
std::string group_name(const json& row, const std::vector<const json*>& rows) {
  std::set<std::string> models;
  for (const json* r : rows) models.insert(r->value("model", json("")).dump());
  const std::string method = row["method"].get<std::string>();
  if (models.size() <= 1 || !row.contains("model") || !row["model"].is_string()) return method;
  std::string model = row["model"].get<std::string>();
  while (model.size() > 1 && model.back() == '/') model.pop_back();
  return method + " on " + model.substr(model.find_last_of('/') + 1);
}

}  // namespace

std::vector<json> read_metrics_records(const std::string& run_dir) {
  const std::string path = run_dir + "/metrics.jsonl";
  check(std::filesystem::is_regular_file(path), "cannot open ", path, " (is ", run_dir,
        " a `compacter train` run?)");
  return train::read_metrics_file(path);
}

double row_score(const json& row) {
  if (row["test"].is_number()) return row["test"].get<double>();
  if (row["validation"].is_number()) return row["validation"].get<double>();
  return NAN;
}

namespace {

// What Figures 1 and 4 share: the rows with a score that `keep` also accepts, grouped by
// group_name in order of first appearance.
struct ScoredRuns {
  std::vector<const json*> used;
  Groups<const json*> by_method;
};

template <class Keep>
ScoredRuns scored_runs(const json& rows, Keep keep) {
  ScoredRuns s;
  for (const json& r : rows)
    if (std::isfinite(row_score(r)) && keep(r)) s.used.push_back(&r);
  for (const json* r : s.used) s.by_method.add(group_name(*r, s.used), r);
  return s;
}

// Draws `c` into f.svg: x on a log axis labelled `x_label`, the score on a linear y axis.
Figure drawn(Figure f, XYChart& c, const ScoredRuns& runs, const std::vector<double>& xs,
             const std::vector<double>& ys, const std::string& x_label) {
  c.x = log_axis(xs, x_label);
  c.y = linear_axis(ys, score_label(runs.used));
  f.svg = render_xy(c);
  return f;
}

}  // namespace

Figure figure1(const json& rows) {
  Figure f{"figure1.svg", "Figure 1: score vs % of trained parameters, one point per method", "",
           ""};
  ScoredRuns runs =
      scored_runs(rows, [](const json& r) { return r["percent_of_backbone"].get<double>() > 0; });
  if (runs.used.empty()) {
    f.skipped = "no run with a test or validation score";
    return f;
  }
  XYChart c;
  c.title = "Score vs trained parameters (Figure 1)";
  c.note = runs_note(runs.used) + "; each point: the mean of a method's runs";
  std::vector<double> xs, ys;
  for (const std::string& method : runs.by_method.order) {
    std::vector<double> p, s;
    for (const json* r : runs.by_method.values[method]) {
      p.push_back((*r)["percent_of_backbone"].get<double>());
      s.push_back(row_score(*r));
    }
    Series series{method, {mean(p)}, {mean(s)}, {method}, false, true};
    xs.push_back(series.x[0]), ys.push_back(series.y[0]);
    c.series.push_back(std::move(series));
  }
  return drawn(f, c, runs, xs, ys, "trained parameters (% of the backbone's, log scale)");
}

Figure figure4(const json& rows) {
  Figure f{"figure4.svg", "Figure 4: score vs training-set size (low-resource runs)", "", ""};
  ScoredRuns runs = scored_runs(
      rows, [](const json& r) { return r.value("max_train_samples", json()).is_number(); });
  if (runs.used.empty()) {
    f.skipped = "no low-resource run (train --max-train-samples N) with a score";
    return f;
  }
  XYChart c;
  c.title = "Score vs training-set size (Figure 4)";
  c.note = runs_note(runs.used) + "; each point: the mean of a method's runs at that size";
  std::vector<double> xs, ys;
  for (const std::string& method : runs.by_method.order) {
    std::map<double, std::vector<double>> at;  // size -> scores, sorted by size
    for (const json* r : runs.by_method.values[method])
      at[(*r)["max_train_samples"].get<double>()].push_back(row_score(*r));
    Series s;
    s.name = method;
    for (const auto& [size, scores] : at) {
      s.x.push_back(size), s.y.push_back(mean(scores));
      xs.push_back(size), ys.push_back(s.y.back());
    }
    c.series.push_back(std::move(s));
  }
  return drawn(f, c, runs, xs, ys, "training examples (--max-train-samples, log scale)");
}

namespace {

// Where record `k` (from 0) of a run's metrics.jsonl is, for messages.
std::string record_place(const std::string& run, size_t k) {
  return cat(run, "/metrics.jsonl, record ", k + 1);
}

}  // namespace

Figure loss_curves(const json& rows, const std::vector<std::vector<json>>& records) {
  Figure f{"loss.svg", "training loss vs step, one line per run", "", ""};
  XYChart c;
  c.title = "Training loss";
  std::vector<double> xs, ys;
  for (size_t i = 0; i < rows.size() && i < records.size(); ++i) {
    Series s;
    s.name = rows[i]["run"].get<std::string>();
    for (size_t k = 0; k < records[i].size(); ++k) {
      const json& r = records[i][k];
      if (field_or(r, "type", "", record_place(s.name, k)) == "train" && r.contains("loss") &&
          r["loss"].is_number() && r.contains("step") && r["step"].is_number()) {
        s.x.push_back(r["step"].get<double>()), s.y.push_back(r["loss"].get<double>());
        xs.push_back(s.x.back()), ys.push_back(s.y.back());
      }
    }
    s.markers = s.x.size() <= 30;
    if (!s.x.empty()) c.series.push_back(std::move(s));
  }
  if (c.series.empty()) {
    f.skipped = "no training record (type \"train\" with a loss) in any metrics.jsonl";
    return f;
  }
  c.note = cat(c.series.size(), c.series.size() == 1 ? " run" : " runs",
               "; each point: the mean loss since the previous record (metrics.jsonl)");
  c.x = linear_axis(xs, "training step", true);
  c.y = linear_axis(ys, "training loss (cross-entropy, nats per target token)", true);
  f.svg = render_xy(c);
  return f;
}

Figure validation_curves(const json& rows, const std::vector<std::vector<json>>& records,
                         const std::string& metric) {
  Figure f{"validation.svg", "validation metric vs step, one line per run", "", ""};
  XYChart c;
  c.title = "Validation score during training";
  std::vector<double> xs, ys;
  std::set<std::string> names;
  for (size_t i = 0; i < rows.size() && i < records.size(); ++i) {
    Series s;
    s.name = rows[i]["run"].get<std::string>();
    for (size_t k = 0; k < records[i].size(); ++k) {
      const json& r = records[i][k];
      if (field_or(r, "type", "", record_place(s.name, k)) != "eval" || !r.contains("metrics") ||
          !r["metrics"].is_object() || r["metrics"].empty() || !r.contains("step") ||
          !r["step"].is_number())
        continue;
      const json& m = r["metrics"];
      const std::string name = metric.empty() ? m.begin().key() : metric;
      if (!m.contains(name) || !m[name].is_number()) continue;
      names.insert(name);
      s.x.push_back(r["step"].get<double>()), s.y.push_back(m[name].get<double>());
      xs.push_back(s.x.back()), ys.push_back(s.y.back());
    }
    if (!s.x.empty()) c.series.push_back(std::move(s));
  }
  if (c.series.empty()) {
    f.skipped = metric.empty() ? "no evaluation record in any metrics.jsonl"
                               : cat("no evaluation record with \"", metric, "\"");
    return f;
  }
  c.note = cat(c.series.size(), c.series.size() == 1 ? " run" : " runs",
               "; the evaluations during training (metrics.jsonl)");
  c.x = linear_axis(xs, "training step", true);
  c.y = linear_axis(ys, (names.size() == 1 ? *names.begin() : "score") +
                            std::string(" on the validation set (x100)"));
  f.svg = render_xy(c);
  return f;
}

}  // namespace compacter::plot

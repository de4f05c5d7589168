// Scoring a task's predictions (spec §5.1 post-processing, §5.2 metrics), the model-selection key
// (§5.2 "average_metrics", §6.4) and the paper's "Avg" column.
#include <algorithm>
#include <numeric>

#include "compacter/core/error.h"
#include "compacter/tasks/metrics.h"
#include "compacter/tasks/tasks.h"
#include "compacter/tasks/text.h"

namespace compacter::tasks {

namespace {

using Strings = std::vector<std::string>;

struct Prepared {
  Strings gold, pred, group;
  std::vector<Strings> answers;
};

Prepared prepare(const std::string& task, const Strings& predictions,
                 const std::vector<Example>& references) {
  check(predictions.size() == references.size(), task, ": ", predictions.size(),
        " predictions for ", references.size(), " references");
  check(!references.empty(), task, ": nothing to score (no references)");
  Prepared p;
  for (size_t i = 0; i < references.size(); ++i) {
    const Example& r = references[i];
    check(!r.target.empty(), task, ": reference ", r.id,
          " has no label (official test files carry none; score validation or paper splits)");
    p.gold.push_back(text::strip(r.target));
    p.pred.push_back(text::strip(predictions[i]));
    p.group.push_back(r.group);
    p.answers.push_back(r.answers);
  }
  return p;
}

// With --fix-quirks the targets are label words (§9 #6): score them as their ids, so that F1's
// positive class and CB's classes are the same as with the paper's "0"/"1"/"2".
void words_to_ids(const TaskInfo& t, Prepared& p) {
  if (t.label_names.empty()) return;
  auto id_of = [&](const std::string& s) -> std::string {
    for (size_t k = 0; k < t.label_names.size(); ++k)
      if (t.label_names[k] == s) return std::to_string(k);
    return s;
  };
  for (const std::string& g : p.gold)
    if (id_of(g) == g) return;  // not every gold is a label word: the paper's integer strings
  for (std::string& g : p.gold) g = id_of(g);
  for (std::string& x : p.pred) {
    const std::string id = id_of(x);
    // a prediction that is an id string but no word stays invalid
    x = id == x ? (x.empty() ? x : "\x01" + x) : id;
  }
}

std::map<std::string, double> compute(const Strings& names, const Prepared& p,
                                      const Strings& classes) {
  std::map<std::string, double> out;
  for (const std::string& m : names) {
    if (m == "accuracy")
      out[m] = metrics::accuracy(p.gold, p.pred);
    else if (m == "f1")
      out[m] = metrics::binary_f1(p.gold, p.pred);
    else if (m == "mcc")
      out[m] = metrics::matthews(p.gold, p.pred);
    else if (m == "pearson")
      out[m] = metrics::pearson(p.gold, p.pred);
    else if (m == "spearman")
      out[m] = metrics::spearman(p.gold, p.pred);
    else if (m == "macro_f1")
      out[m] = metrics::macro_f1(p.gold, p.pred, classes);
    else
      throw Error(cat("unknown metric '", m, "'"));
  }
  return out;
}

}  // namespace

std::map<std::string, double> score(const std::string& task, const Strings& predictions,
                                    const std::vector<Example>& references) {
  const TaskInfo& t = find_task(task);
  Prepared p = prepare(t.name, predictions, references);
  if (t.name == "record") return metrics::squad(p.answers, p.pred);
  words_to_ids(t, p);
  if (t.name == "multirc") {
    for (size_t i = 0; i < references.size(); ++i)
      check(!references[i].group.empty(), "multirc: reference ", references[i].id,
            " has no group (expected the question id)");
    return {{"f1", metrics::binary_f1(p.gold, p.pred)},
            {"em", metrics::group_exact_match(p.gold, p.pred, p.group)}};
  }
  return compute(t.metrics, p, t.labels);
}

std::map<std::string, double> score_user(const UserTaskOptions& options, const Strings& predictions,
                                         const std::vector<Example>& references) {
  const TaskInfo t = user_task_info(options);
  Prepared p = prepare("user", predictions, references);
  std::map<std::string, double> out;
  Strings plain;
  for (const std::string& m : t.metrics) {
    if (m == "em" ||
        (m == "f1" && std::find(t.metrics.begin(), t.metrics.end(), "em") != t.metrics.end())) {
      continue;  // squad's pair
    }
    plain.push_back(m);
  }
  out = compute(plain, p, options.labels);
  if (std::find(t.metrics.begin(), t.metrics.end(), "em") != t.metrics.end()) {
    const auto sq = metrics::squad(p.answers, p.pred);
    out["em"] = sq.at("em");
    out["f1"] = sq.at("f1");
  }
  return out;
}

double selection_value(const std::string& task, const std::map<std::string, double>& metrics) {
  const Strings names = task == "user" ? Strings{} : find_task(task).metrics;
  double sum = 0;
  size_t count = 0;
  if (names.empty()) {  // a user task: every metric given
    for (const auto& [k, v] : metrics) sum += v, ++count;
  } else {
    for (const std::string& n : names) {
      const auto it = metrics.find(n);
      check(it != metrics.end(), "selection value of ", task, ": metric \"", n, "\" is missing");
      sum += it->second;
      ++count;
    }
  }
  check(count > 0, "selection value of ", task, ": no metrics");
  return sum / static_cast<double>(count);
}

double paper_average(const std::vector<double>& numbers) {
  check(!numbers.empty(), "paper average: no numbers");
  return std::accumulate(numbers.begin(), numbers.end(), 0.0) / static_cast<double>(numbers.size());
}

}  // namespace compacter::tasks

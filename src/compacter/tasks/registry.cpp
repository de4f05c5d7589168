// The task table (spec §4.1 sizes and split groups, §4.2 fields and labels, §4.5 lengths, §5.2
// metrics) and low-resource epochs (§4.6). Torch-free (the fuzz target `predict_fields` compiles
// it); the prefix rule and the tokenizer's part are in encoding.cpp.
#include <algorithm>

#include "compacter/core/error.h"
#include "compacter/tasks/metrics.h"
#include "compacter/tasks/tasks.h"

namespace compacter::tasks {

namespace {

using Strings = std::vector<std::string>;

TaskInfo make(const std::string& name, const std::string& code_name, const std::string& benchmark,
              const std::string& folder, Strings metrics, SplitRule rule, SplitSizes sizes,
              Strings label_names, Strings fields, bool used = true) {
  TaskInfo t;
  t.name = name;
  t.code_name = code_name;
  t.benchmark = benchmark;
  t.folder = folder;
  t.metrics = std::move(metrics);
  t.selection_metric = "average_metrics";
  t.split_rule = rule;
  t.paper_sizes = sizes;
  t.label_names = std::move(label_names);
  for (size_t i = 0; i < t.label_names.size(); ++i) t.labels.push_back(std::to_string(i));
  t.source_fields = std::move(fields);
  t.truncated_field = t.source_fields.empty() ? "" : t.source_fields.back();
  t.max_source_length = benchmark == "glue" ? 128 : 256;
  t.used_in_paper = used;
  return t;
}

std::vector<TaskInfo> build() {
  const SplitRule S = SplitRule::kSmall, L = SplitRule::kLarge;
  const Strings binary_nli = {"entailment", "not_entailment"};
  const Strings false_true = {"False", "True"};
  std::vector<TaskInfo> t;
  t.push_back(make("cola", "cola", "glue", "CoLA", {"mcc"}, S, {8551, 521, 522},
                   {"unacceptable", "acceptable"}, {"sentence"}));
  t.push_back(make("sst2", "sst2", "glue", "SST-2", {"accuracy"}, L, {66349, 1000, 872},
                   {"negative", "positive"}, {"sentence"}));
  t.push_back(make("mrpc", "mrpc", "glue", "MRPC", {"accuracy", "f1"}, S, {3668, 204, 204},
                   {"not_equivalent", "equivalent"}, {"sentence1", "sentence2"}));
  t.push_back(make("qqp", "qqp", "glue", "QQP", {"accuracy", "f1"}, L, {362846, 1000, 40430},
                   {"not_duplicate", "duplicate"}, {"question1", "question2"}));
  TaskInfo stsb = make("stsb", "stsb", "glue", "STS-B", {"pearson", "spearman"}, S,
                       {5749, 750, 750}, {}, {"sentence1", "sentence2"});
  for (int i = 0; i <= 25; ++i) {  // 0.0, 0.2, ..., 5.0 (§4.4)
    const int tenths = 2 * i;
    stsb.labels.push_back(std::to_string(tenths / 10) + "." + std::to_string(tenths % 10));
  }
  t.push_back(stsb);
  t.push_back(make("mnli", "mnli", "glue", "MNLI", {"accuracy"}, SplitRule::kMnli,
                   {392702, 9832, 9815}, {"entailment", "neutral", "contradiction"},
                   {"premise", "hypothesis"}));
  t.push_back(make("qnli", "qnli", "glue", "QNLI", {"accuracy"}, L, {103743, 1000, 5463},
                   binary_nli, {"question", "sentence"}));
  t.push_back(make("rte", "rte", "glue", "RTE", {"accuracy"}, S, {2490, 138, 139}, binary_nli,
                   {"sentence1", "sentence2"}));
  t.push_back(make("wnli", "wnli", "glue", "WNLI", {"accuracy"}, S, {635, 35, 36},
                   {"not_entailment", "entailment"}, {"sentence1", "sentence2"}, false));
  t.push_back(make("boolq", "superglue-boolq", "superglue", "BoolQ", {"accuracy"}, S,
                   {9427, 1635, 1635}, false_true, {"question", "passage"}));
  t.push_back(make("cb", "superglue-cb", "superglue", "CB", {"accuracy", "macro_f1"}, S,
                   {250, 28, 28}, {"entailment", "contradiction", "neutral"},
                   {"premise", "hypothesis"}));
  t.push_back(make("copa", "superglue-copa", "superglue", "COPA", {"accuracy"}, S, {400, 50, 50},
                   {"choice1", "choice2"}, {"premise", "choice1", "choice2"}));
  t.push_back(make("multirc", "superglue-multirc", "superglue", "MultiRC", {"f1", "em"}, S,
                   {27243, 2424, 2424}, false_true, {"question", "answer", "paragraph"}));
  TaskInfo record = make("record", "superglue-record", "superglue", "ReCoRD", {"f1", "em"}, L,
                         {99730, 1000, 10000}, {}, {"query", "entities", "passage"});
  record.max_source_length = 512;
  record.max_target_length = 128;
  t.push_back(record);
  t.push_back(make("wic", "superglue-wic", "superglue", "WiC", {"accuracy"}, S, {5428, 319, 319},
                   false_true, {"sentence1", "sentence2", "word"}));
  t.push_back(make("superglue-rte", "superglue-rte", "superglue", "RTE", {"accuracy"}, S,
                   {2490, 138, 139}, binary_nli, {"premise", "hypothesis"}, false));
  t.push_back(make("wsc", "superglue-wsc.fixed", "superglue", "WSC", {"accuracy"}, S, {554, 52, 52},
                   false_true, {"text"}, false));
  return t;
}

}  // namespace

const std::vector<TaskInfo>& all_tasks() {
  static const std::vector<TaskInfo> tasks = build();
  return tasks;
}

const TaskInfo& find_task(const std::string& name) {
  for (const TaskInfo& t : all_tasks())
    if (t.name == name || t.code_name == name) return t;
  if (name == "superglue-wsc") return find_task("wsc");
  std::string known;
  for (const TaskInfo& t : all_tasks()) known += (known.empty() ? "" : ", ") + t.name;
  throw Error(cat("unknown task '", name, "' (known: ", known, ", user)"));
}

TaskInfo user_task_info(const UserTaskOptions& o) {
  TaskInfo t;
  t.name = "user";
  t.code_name = o.name;
  t.benchmark = "user";
  t.selection_metric = "average_metrics";
  t.split_rule = SplitRule::kUser;
  t.labels = o.labels;
  t.source_fields = o.source_fields;
  t.truncated_field = o.source_fields.empty() ? "" : o.source_fields.back();
  t.max_source_length = 128;
  t.max_target_length = o.labels.empty() ? 128 : -1;
  t.used_in_paper = false;
  const Strings requested = o.metrics.empty() ? Strings{"accuracy"} : o.metrics;
  const Strings& known = metrics::metric_names();
  for (const std::string& m : requested) {
    if (std::find(known.begin(), known.end(), m) == known.end()) {
      std::string list;
      for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
      throw Error(cat("unknown metric '", m, "' (expected one of ", list, ")"));
    }
    if (m == "squad") {
      t.metrics.push_back("f1");
      t.metrics.push_back("em");
    } else {
      t.metrics.push_back(m);
    }
  }
  return t;
}

const std::vector<std::pair<int64_t, int64_t>>& low_resource_epochs() {
  static const std::vector<std::pair<int64_t, int64_t>> table = {
      {100, 1000}, {500, 200}, {1000, 100}, {2000, 50}, {4000, 25}};
  return table;
}

int64_t low_resource_epochs_for(int64_t train_samples) {
  for (const auto& [n, epochs] : low_resource_epochs())
    if (n == train_samples) return epochs;
  throw Error(cat("no low-resource epoch count for ", train_samples,
                  " train samples (the paper's sizes: 100, 500, 1000, 2000, 4000)"));
}

std::vector<std::string> task_labels(const TaskInfo& task, bool fix_quirks) {
  if (fix_quirks && !task.label_names.empty()) return task.label_names;
  return task.labels;
}

}  // namespace compacter::tasks

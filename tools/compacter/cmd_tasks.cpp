// `compacter tasks`, `compacter data` and `compacter score`: the GLUE / SuperGLUE / user tasks of
// src/compacter/tasks (spec §4 data, §5 metrics) from the command line. See docs/tasks.md.
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "compacter/core/error.h"
#include "compacter/data/tokenizer.h"
#include "compacter/tasks/readers.h"
#include "compacter/tasks/tasks.h"

namespace compacter::cli {
namespace {

using nlohmann::json;
namespace tk = compacter::tasks;

struct DataCliOptions {
  std::string task;
  std::string data_dir;
  std::string split;
  std::string method;
  bool no_prefix = false;
  bool official_splits = false;
  bool fix_quirks = false;
  int64_t max_train_samples = -1;
  uint64_t data_seed = 42;
  std::string layout = "auto";
  bool skip_invalid = false;
  // user task
  std::string task_name = "user";
  std::string format;
  std::vector<std::string> source_fields;
  std::string target_field;
  std::vector<std::string> labels;
  std::vector<std::string> metrics;
  std::string id_field;
};

void add_data_options(CLI::App* cmd, DataCliOptions& o, bool split_required) {
  cmd->add_option("--data-dir", o.data_dir,
                  "folder with the task's files: official GLUE TSVs / SuperGLUE JSONL or Hugging "
                  "Face to_json() files (or a benchmark folder holding the task's folder)");
  auto* split =
      cmd->add_option("--split", o.split, "train, validation or test")
          ->check(CLI::IsMember({"train", "validation", "test", "validation_matched",
                                 "validation_mismatched", "test_matched", "test_mismatched"}));
  if (split_required) split->required();
  cmd->add_option("--method", o.method,
                  "fine-tuning method; decides the task prefix (spec §4.2: only full, bitfit, "
                  "prompt-r, prompt-t and said get it)");
  cmd->add_flag("--no-prefix", o.no_prefix, "never add the task prefix");
  cmd->add_flag("--official-splits", o.official_splits,
                "the files' own train/validation/test instead of the paper's splits (§4.1)");
  cmd->add_flag("--fix-quirks", o.fix_quirks,
                "corrected forms of the reference's quirks (spec §9 #1-#6) instead of the paper's");
  cmd->add_option("--max-train-samples", o.max_train_samples,
                  "low-resource subsample of the train split (spec §4.6)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--data-seed", o.data_seed, "seed of the split permutations")
      ->capture_default_str();
  cmd->add_option("--layout", o.layout, "auto, official or hf")
      ->check(CLI::IsMember({"auto", "official", "hf"}))
      ->capture_default_str();
  cmd->add_flag("--skip-invalid", o.skip_invalid,
                "skip malformed rows (their count is printed to stderr) instead of failing");
  cmd->add_option("--task-name", o.task_name, "user task: its name (the prefix)")
      ->capture_default_str();
  cmd->add_option("--format", o.format, "user task: jsonl, tsv or csv (default: file extension)")
      ->check(CLI::IsMember({"jsonl", "tsv", "csv"}));
  cmd->add_option("--source-field", o.source_fields,
                  "user task: input field(s), in order (repeatable or comma-separated)")
      ->delimiter(',');
  cmd->add_option("--target-field", o.target_field, "user task: the target field");
  cmd->add_option("--labels", o.labels, "user task: allowed target strings (comma-separated)")
      ->delimiter(',');
  cmd->add_option("--metric", o.metrics,
                  "user task: accuracy, f1, mcc, pearson, spearman, macro_f1 or squad "
                  "(repeatable or comma-separated; default accuracy)")
      ->delimiter(',');
  cmd->add_option("--id-field", o.id_field, "user task: field holding the example id");
}

tk::DataOptions to_data_options(const DataCliOptions& o) {
  tk::DataOptions d;
  d.data_dir = o.data_dir;
  d.paper_splits = !o.official_splits;
  d.fix_quirks = o.fix_quirks;
  d.add_prefix =
      !o.no_prefix && (o.method.empty() || tk::method_adds_prefix(o.method, o.fix_quirks));
  d.max_train_samples = o.max_train_samples;
  d.data_seed = o.data_seed;
  d.skip_invalid = o.skip_invalid;
  d.layout = tk::parse_layout(o.layout);
  d.user.name = o.task_name;
  d.user.format = o.format;
  d.user.source_fields = o.source_fields;
  d.user.target_field = o.target_field;
  d.user.labels = o.labels;
  d.user.metrics = o.metrics;
  d.user.id_field = o.id_field;
  return d;
}

std::vector<tk::Example> load(const DataCliOptions& o) {
  check(!o.data_dir.empty(), "--data-dir is required to load ", o.task, " data");
  check(!o.split.empty(), "--split is required to load ", o.task, " data");
  int64_t skipped = 0;
  std::vector<tk::Example> examples = tk::load_split(o.task, o.split, to_data_options(o), &skipped);
  if (o.skip_invalid)
    std::cerr << "compacter: skipped " << skipped << " invalid row(s) of " << o.task << " "
              << o.split << "\n";
  return examples;
}

const char* rule_text(tk::SplitRule r) {
  switch (r) {
    case tk::SplitRule::kSmall:
      return "small: train = train; validation / test = first / second half of perm(validation)";
    case tk::SplitRule::kLarge:
      return "large: validation = perm(train)[:1000]; train = the rest; test = validation";
    case tk::SplitRule::kMnli:
      return "mnli: train = train; validation = validation_mismatched; test = validation_matched";
    case tk::SplitRule::kUser:
      return "user: the files; without a test file, halves of perm(validation)";
  }
  return "";
}

void run_tasks(bool as_json) {
  json all = json::array();
  for (const tk::TaskInfo& t : tk::all_tasks()) {
    all.push_back({{"name", t.name},
                   {"benchmark", t.benchmark},
                   {"prefix", t.code_name},
                   {"folder", t.folder},
                   {"metrics", t.metrics},
                   {"selection", t.selection_metric},
                   {"split_rule", rule_text(t.split_rule)},
                   {"paper_sizes",
                    {{"train", t.paper_sizes.train},
                     {"validation", t.paper_sizes.validation},
                     {"test", t.paper_sizes.test}}},
                   {"labels", t.label_names},
                   {"max_source_length", t.max_source_length},
                   {"max_target_length", t.max_target_length},
                   {"generation_max_length", t.generation_max_length},
                   {"used_in_paper", t.used_in_paper}});
  }
  if (as_json) {
    for (const json& t : all) std::cout << t.dump() << "\n";
    return;
  }
  std::cout << std::left << std::setw(15) << "task" << std::setw(10) << "benchmark" << std::setw(18)
            << "metrics" << std::setw(26) << "paper train/val/test"
            << "split rule\n";
  for (const json& t : all) {
    std::string metrics;
    for (const auto& m : t["metrics"])
      metrics += (metrics.empty() ? "" : ",") + m.get<std::string>();
    const json& s = t["paper_sizes"];
    std::string sizes = cat(s["train"].get<int64_t>(), "/", s["validation"].get<int64_t>(), "/",
                            s["test"].get<int64_t>());
    std::string name = t["name"].get<std::string>() + (t["used_in_paper"].get<bool>() ? "" : "*");
    std::cout << std::setw(15) << name << std::setw(10) << t["benchmark"].get<std::string>()
              << std::setw(18) << metrics << std::setw(26) << sizes
              << t["split_rule"].get<std::string>() << "\n";
  }
  std::cout << "(* not in the paper's tables; also: user = your own JSONL/TSV/CSV files)\n";
}

json example_json(const tk::Example& e) {
  return {{"id", e.id},
          {"source", e.source},
          {"target", e.target},
          {"answers", e.answers},
          {"group", e.group}};
}

void run_data(const DataCliOptions& o, int64_t limit, const std::string& tokenizer_path) {
  std::vector<tk::Example> examples = load(o);
  std::optional<T5Tokenizer> tokenizer;
  tk::TaskInfo info;
  int64_t target_len = 0;
  if (!tokenizer_path.empty()) {
    tokenizer.emplace(T5Tokenizer::load(tokenizer_path));
    info = o.task == "user" ? tk::user_task_info(to_data_options(o).user) : tk::find_task(o.task);
    target_len = tk::target_length(info, *tokenizer, o.fix_quirks);
  }
  int64_t printed = 0;
  for (const tk::Example& e : examples) {
    if (limit >= 0 && printed >= limit) break;
    json j = example_json(e);
    if (tokenizer) {
      const tk::EncodedExample enc = tk::encode_example(e, info, *tokenizer, target_len);
      j["source_ids"] = enc.source_ids;
      j["target_ids"] = enc.target_ids;
    }
    std::cout << j.dump() << "\n";
    ++printed;
  }
  std::cout.flush();
}

std::vector<tk::Example> read_references(const std::string& path) {
  std::vector<tk::Example> refs;
  tk::read_jsonl(path, false, nullptr, [&](const json& row, const tk::Where& w) {
    tk::Example e;
    e.id = tk::string_field(row, "id", w);
    e.target = tk::string_field(row, "target", w);
    if (row.contains("answers")) {
      const json& a = row["answers"];
      check(a.is_array(), w.str(), ": field \"answers\": expected an array of strings");
      for (const json& s : a) {
        check(s.is_string(), w.str(), ": field \"answers\": expected strings, found ",
              tk::json_kind(s));
        e.answers.push_back(s.get<std::string>());
      }
    } else {
      e.answers = {e.target};
    }
    if (row.contains("group")) e.group = tk::string_field(row, "group", w);
    refs.push_back(std::move(e));
  });
  return refs;
}

void run_score(const DataCliOptions& o, const std::string& predictions_path,
               const std::string& references_path) {
  std::vector<tk::Example> refs =
      references_path.empty() ? load(o) : read_references(references_path);
  std::map<std::string, std::string> by_id;
  std::map<std::string, tk::Where> where;
  tk::read_jsonl(predictions_path, false, nullptr, [&](const json& row, const tk::Where& w) {
    const std::string id = tk::string_field(row, "id", w);
    const std::string pred = tk::string_field(row, "prediction", w);
    check(by_id.emplace(id, pred).second, w.str(), ": duplicate prediction for id \"", id,
          "\" (first at line ", where[id].line, ")");
    where[id] = w;
  });
  std::map<std::string, bool> known;
  std::vector<std::string> preds;
  for (const tk::Example& r : refs) {
    check(known.emplace(r.id, true).second, "references: duplicate id \"", r.id, "\"");
    const auto it = by_id.find(r.id);
    check(it != by_id.end(), predictions_path, ": no prediction for id \"", r.id, "\" (",
          refs.size(), " references)");
    preds.push_back(it->second);
  }
  for (const auto& [id, w] : where)
    check(known.count(id) > 0, w.str(), ": prediction for id \"", id,
          "\", which is not among the references");
  const std::map<std::string, double> m = o.task == "user"
                                              ? tk::score_user(to_data_options(o).user, preds, refs)
                                              : tk::score(o.task, preds, refs);
  json out = json::object();
  for (const auto& [k, v] : m) out[k] = v;
  out["average_metrics"] = tk::selection_value(o.task, m);
  out["task"] = o.task;
  out["count"] = refs.size();
  std::cout << out.dump() << "\n";
}

}  // namespace

void add_tasks_commands(CLI::App& app) {
  auto tasks_json = std::make_shared<bool>(false);
  CLI::App* tasks = app.add_subcommand(
      "tasks", "List the GLUE and SuperGLUE tasks with their metrics and split rules (§4, §5)");
  tasks->add_flag("--json", *tasks_json, "one JSON object per task");
  tasks->callback([tasks_json] { run_tasks(*tasks_json); });

  auto data_opts = std::make_shared<DataCliOptions>();
  auto limit = std::make_shared<int64_t>(-1);
  auto tokenizer = std::make_shared<std::string>();
  CLI::App* data = app.add_subcommand(
      "data",
      "Print a task split as JSON Lines (id, source, target, answers, group; token ids with "
      "--tokenizer), formatted as text to text the way the paper's code did (spec §4)");
  data->add_option("--task", data_opts->task, "task name (see `compacter tasks`) or user")
      ->required();
  add_data_options(data, *data_opts, true);
  data->add_option("--limit", *limit, "print at most N examples")->check(CLI::NonNegativeNumber);
  data->add_option("--tokenizer", *tokenizer,
                   "spiece.model: add source_ids / target_ids, truncated to the task's lengths");
  data->callback([data_opts, limit, tokenizer] { run_data(*data_opts, *limit, *tokenizer); });

  auto score_opts = std::make_shared<DataCliOptions>();
  auto predictions = std::make_shared<std::string>();
  auto references = std::make_shared<std::string>();
  CLI::App* score = app.add_subcommand(
      "score",
      "Score predictions ({\"id\":..,\"prediction\":..} JSON Lines) with the task's metrics "
      "(spec §5.2); prints the metrics and their mean (the model-selection key) as JSON");
  score->add_option("--task", score_opts->task, "task name or user")->required();
  score->add_option("--predictions", *predictions, "predictions JSON Lines")->required();
  score->add_option("--references", *references,
                    "references: the JSON Lines `compacter data` prints (default: load them with "
                    "--data-dir and --split)");
  add_data_options(score, *score_opts, false);
  score->callback(
      [score_opts, predictions, references] { run_score(*score_opts, *predictions, *references); });
}

}  // namespace compacter::cli

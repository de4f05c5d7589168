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
#include "compacter/train/base_model.h"
#include "data_options.h"

namespace compacter::cli {
namespace {

using nlohmann::json;
namespace tk = compacter::tasks;

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
  std::vector<tk::Example> examples = load_examples(o);
  std::optional<T5Tokenizer> tokenizer;
  tk::TaskInfo info;
  int64_t target_len = 0;
  if (!tokenizer_path.empty()) {
    tokenizer.emplace(train::tokenizer_from_argument(tokenizer_path));
    info = task_info(o);
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
  add_data_options(data, *data_opts, true, true, true);
  data->add_option("--limit", *limit, "print at most N examples")->check(CLI::NonNegativeNumber);
  data->add_option(
      "--tokenizer", *tokenizer,
      "add source_ids / target_ids, truncated to the task's lengths, with this tokenizer: "
      "a spiece.model, a model folder (bytes for ByT5, else its spiece.model) or "
      "\"byte\" (ByT5's UTF-8 bytes)");
  data->callback([data_opts, limit, tokenizer] { run_data(*data_opts, *limit, *tokenizer); });
}

}  // namespace compacter::cli

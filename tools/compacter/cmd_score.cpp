// `compacter score`: scores predictions ({"id", "prediction"} JSON Lines) with a task's metrics
// (spec §5.2) against references loaded from the task's files or from `compacter data`'s output.
#include <iostream>

#include "commands.h"
#include "compacter/tasks/prediction_files.h"
#include "compacter/tasks/tasks.h"
#include "data_options.h"

namespace compacter::cli {
namespace {

namespace tk = compacter::tasks;
using nlohmann::json;

void run_score(const DataCliOptions& o, const std::string& predictions_path,
               const std::string& references_path) {
  const std::vector<tk::Example> refs =
      references_path.empty() ? load_examples(o) : tk::read_reference_file(references_path);
  const std::vector<std::string> preds = tk::read_predictions_for(predictions_path, refs);
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

void add_score_command(CLI::App& app) {
  auto score_opts = std::make_shared<DataCliOptions>();
  auto predictions = std::make_shared<std::string>();
  auto references = std::make_shared<std::string>();
  CLI::App* score = app.add_subcommand(
      "score",
      "Score predictions ({\"id\":..,\"prediction\":..} JSON Lines) with the task's metrics "
      "(spec §5.2); prints the metrics and their mean (the model-selection key) as JSON");
  score->add_option("--predictions", *predictions, "predictions JSON Lines")->required();
  score->add_option("--references", *references,
                    "references: the JSON Lines `compacter data` prints (default: load them with "
                    "--data-dir and --split)");
  add_data_options(score, *score_opts, true, false, true);
  score->callback(
      [score_opts, predictions, references] { run_score(*score_opts, *predictions, *references); });
}

}  // namespace compacter::cli

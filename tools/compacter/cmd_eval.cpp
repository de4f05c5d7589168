// `compacter eval`: scores a saved adapter on a split of a task (spec §5) through
// train::evaluate_adapter (train/finetune.h).
#include <iostream>

#include "commands.h"
#include "common.h"
#include "compacter/train/finetune.h"
#include "data_options.h"
#include "stderr_progress.h"

namespace compacter::cli {

namespace {

void run_eval(train::EvaluateConfig& c, const DataCliOptions& data) {
  c.data = to_data_spec(data);
  c.split = data.split;
  StderrProgress progress;
  const train::EvaluateResult r = train::evaluate_adapter(c, progress);
  std::cout << nlohmann::json({{"task", c.data.task},
                               {"split", c.split},
                               {"examples", r.examples},
                               {"metrics", r.metrics}})
                   .dump()
            << "\n";
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto e = std::make_shared<train::EvaluateConfig>();
  auto data = std::make_shared<DataCliOptions>();
  CLI::App* ev = app.add_subcommand("eval", "Score a saved adapter on a split of a task");
  add_model_options(*ev, e->model);
  ev->add_option("--adapter", e->adapter, "adapter directory")->required();
  add_allow_base_mismatch_flag(*ev, e->allow_base_mismatch);
  add_data_options(ev, *data, true, true, false);
  ev->add_option("--predictions-out", e->predictions_out,
                 "write {\"id\", \"prediction\"} JSON Lines here");
  ev->add_option("--batch-size", e->batch_size, "examples per generation batch")
      ->capture_default_str();
  ev->add_option("--max-new-tokens", e->max_new_tokens,
                 "tokens generated at most (default: the task's, 19 as the paper)");
  ev->callback([e, data] { run_eval(*e, *data); });
}

}  // namespace compacter::cli

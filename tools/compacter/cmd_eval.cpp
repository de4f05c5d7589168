// `compacter eval`: scores a saved adapter on a split of a task (spec §5) through
// train::evaluate_adapter (train/finetune.h).
#include <iostream>

#include "commands.h"
#include "common.h"
#include "compacter/train/finetune.h"
#include "data_options.h"
#include "decoding_options.h"
#include "stderr_progress.h"

namespace compacter::cli {

namespace {

void run_eval(train::EvaluateConfig& c, const DataCliOptions& data, const DecodingFlags& decoding) {
  c.data = to_data_spec(data);
  // Greedy with the model's ids unless flags say otherwise (the folder's generation_config.json
  // is not used: scores follow the paper's protocol).
  c.generation = with_decoding_flags(decoding, decoding::GenerationConfig{});
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
  auto decoding = std::make_shared<DecodingFlags>();
  CLI::App* ev = app.add_subcommand("eval", "Score a saved adapter on a split of a task");
  add_model_options(*ev, e->model, true, /*int8=*/true);
  ev->add_option("--adapter", e->adapter, "adapter directory")->required();
  add_allow_base_mismatch_flag(*ev, e->allow_base_mismatch);
  add_data_options(ev, *data, true, true, false);
  ev->add_option("--predictions-out", e->predictions_out,
                 "write {\"id\", \"prediction\"} JSON Lines here");
  ev->add_option("--batch-size", e->batch_size, "examples per generation batch")
      ->capture_default_str();
  ev->add_option("--max-new-tokens", e->max_new_tokens,
                 "tokens generated at most (default: the task's, 19 as the paper)");
  ev->add_flag("--constrain-labels", e->constrain_labels,
               "predict the most probable of the task's labels (each scored teacher-forced) "
               "instead of generating text");
  add_decoding_flags(*ev, *decoding);
  ev->callback([e, data, decoding] { run_eval(*e, *data, *decoding); });
}

}  // namespace compacter::cli

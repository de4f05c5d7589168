// Fuzz target for what `compacter train --resume` reads before any tensor (train/run_directory.h):
// the input's first byte picks the file, the rest is its text.
//   even: checkpoint/state.json, through checkpoint_state_from_json (every counter a JSON integer
//         within int64_t and not negative, best_step from -1 up to step, the times numbers,
//         gradient_bucket_order, when given, indices from 0);
//   odd:  run_config.json, compared as --resume compares it (first_config_difference, paths as
//         files) with the effective settings of a real run (kEffective below); accepted when
//         they are equal, as --resume then continues.
// Beyond "accepted or compacter::Error": an accepted state holds no negative counter and writes
// back to the same JSON (checkpoint_state_to_json); a recorded config equals itself.
#include <nlohmann/json.hpp>

#include <string>

#include "compacter/core/error.h"
#include "compacter/train/run_directory.h"
#include "fuzz_target.h"

namespace {

// A real run_config.json (`compacter train --task rte --method compacter++`), paths relative.
const char* const kEffective = R"({"data":{"add_prefix":false,"data_seed":42,"fix_quirks":false,
"layout":"auto","max_train_samples":32,"official_splits":false,"skip_invalid":false},
"data_dir":"data/glue/RTE","device":"cpu","dtype":"fp32","init_seed":42,"max_new_tokens":4,
"method":"compacter++","method_options":{"n":2,"rank":1,"reduction_factor":4,
"target_modules":"q,v","non_linearity":"gelu_new"},"model":"model0","task":"rte","threads":2,
"tokenizer":"","training":{"batch_size":8,"epochs":20,"learning_rate":0.003,"max_steps":6,
"save_steps":0,"seed":42,"warmup_steps":500},"vocab_rows":-1})";

bool state_json(const nlohmann::json& j) {
  using compacter::train::CheckpointState;
  const CheckpointState s = compacter::train::checkpoint_state_from_json(j, "state.json");
  if (s.step < 0 || s.epoch < 0 || s.batch_in_epoch < 0 || s.best_step < -1 ||
      s.best_step > s.step || s.examples < 0 || s.loss_count < 0 || s.optimizer_steps < 0)
    __builtin_trap();
  for (const int64_t i : s.gradient_bucket_order)
    if (i < 0) __builtin_trap();
  // What was read writes back the same (the numbers through a double may differ only for
  // integers that JSON gave as integers, and those are kept exactly).
  const CheckpointState again = compacter::train::checkpoint_state_from_json(
      compacter::train::checkpoint_state_to_json(s), "state.json (written back)");
  if (again.step != s.step || again.optimizer_steps != s.optimizer_steps ||
      again.evaluations.size() != s.evaluations.size() ||
      again.gradient_bucket_order != s.gradient_bucket_order)
    __builtin_trap();
  return true;
}

bool run_config(const nlohmann::json& recorded) {
  static const nlohmann::json effective = nlohmann::json::parse(kEffective);
  const auto paths = compacter::train::finetune_layout().path_settings;
  if (!compacter::train::first_config_difference(recorded, recorded, paths).empty())
    __builtin_trap();
  return compacter::train::first_config_difference(recorded, effective, paths).empty();
}

}  // namespace

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  if (size == 0) return false;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data + 1, data + size);
  } catch (const nlohmann::json::exception&) {  // --resume refuses it: "not valid JSON"
    return false;
  }
  try {
    return (data[0] & 1) == 0 ? state_json(j) : run_config(j);
  } catch (const compacter::Error&) {
    return false;
  }
}

COMPACTER_FUZZ_ENTRY_POINT

// Training settings (spec §6): JSON and validation; see options.h.
#include "compacter/train/options.h"

namespace compacter::train {

void TrainOptions::validate() const {
  check_usage(batch_size >= 1, "batch_size must be at least 1, got ", batch_size);
  check_usage(gradient_accumulation >= 1, "gradient_accumulation must be at least 1, got ",
              gradient_accumulation);
  check_usage(eval_batch_size >= 1, "eval_batch_size must be at least 1, got ", eval_batch_size);
  check_usage(max_steps > 0 || epochs >= 1, "give epochs >= 1 or max_steps > 0 (epochs ", epochs,
              ", max_steps ", max_steps, ")");
  check_usage(learning_rate > 0, "learning_rate must be positive, got ", learning_rate);
  check_usage(warmup_steps >= 0, "warmup_steps must not be negative, got ", warmup_steps);
  check_usage(log_steps >= 1, "log_steps must be at least 1, got ", log_steps);
  check_usage(eval_steps >= 0, "eval_steps must not be negative, got ", eval_steps);
  check_usage(save_steps >= 0, "save_steps must not be negative, got ", save_steps);
  check_usage(max_grad_norm >= 0, "max_grad_norm must not be negative, got ", max_grad_norm);
  check_usage(weight_decay >= 0, "weight_decay must not be negative, got ", weight_decay);
}

nlohmann::json train_options_to_json(const TrainOptions& o) {
  return options::to_json(o);
}

void train_options_from_json(const nlohmann::json& j, const std::string& source, TrainOptions& o) {
  options::from_json(j, source, "training option", o);
}

}  // namespace compacter::train

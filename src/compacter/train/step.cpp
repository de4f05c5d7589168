// One optimizer step (spec §6.1): see step.h.
#include "compacter/train/step.h"

#include <torch/torch.h>

#include "compacter/core/error.h"
#include "compacter/nn/autocast.h"
#include "compacter/peft/methods.h"

namespace compacter::train {

namespace {

std::vector<std::pair<std::string, torch::Tensor>> checked_trainable(nn::T5ModelImpl& model) {
  auto params = peft::trainable_named_parameters(model);
  check(!params.empty(), "nothing to train: the method leaves no tensor trainable");
  return params;
}

}  // namespace

TrainStep::TrainStep(nn::T5ModelImpl& model, const StepOptions& options)
    : model_(model),
      options_(options),
      optimizer_(checked_trainable(model), AdamWOptions{0.9, 0.999, 1e-8, options.weight_decay}),
      device_(model.shared->weight.device()) {
  check_usage(options.gradient_accumulation >= 1, "gradient_accumulation must be at least 1, got ",
              options.gradient_accumulation);
  for (const auto& [name, p] : optimizer_.params()) tensors_.push_back(p);
}

double TrainStep::accumulate(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                             const torch::Tensor& labels) {
  nn::Seq2SeqOutput out;
  {
    nn::AutocastScope autocast(device_, options_.bf16_autocast);
    out = model_.forward(input_ids.to(device_), attention_mask.to(device_), {}, labels.to(device_));
  }
  (out.loss / static_cast<double>(options_.gradient_accumulation)).backward();
  return out.loss.item<double>();
}

double TrainStep::accumulate_weighted(const torch::Tensor& input_ids,
                                      const torch::Tensor& attention_mask,
                                      const torch::Tensor& labels, double weight) {
  nn::Seq2SeqOutput out;
  {
    nn::AutocastScope autocast(device_, options_.bf16_autocast);
    out = model_.forward(input_ids.to(device_), attention_mask.to(device_), {}, labels.to(device_));
  }
  (out.loss * weight).backward();
  return out.loss.item<double>();
}

void TrainStep::finish(double learning_rate) {
  if (options_.max_grad_norm > 0) clip_grad_norm(tensors_, options_.max_grad_norm);
  optimizer_.step(learning_rate);
  optimizer_.zero_grad();
}

}  // namespace compacter::train

// One optimizer step of spec §6.1, the one thing `train`, `pretrain`, `compacter bench` (Table 3)
// and the benchmark programs in bench/ all run: for each micro-batch a forward pass with labels
// (under bf16 autocast when asked) and a backward pass of loss / accumulation; then global-norm
// gradient clipping, AdamW at the step's learning rate over the trainable tensors only, and zeroed
// gradients.
#pragma once
#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

#include "compacter/nn/t5.h"
#include "compacter/train/adamw.h"

namespace compacter::train {

struct StepOptions {
  int64_t gradient_accumulation = 1;  // micro-batches per optimizer step
  double max_grad_norm = 1.0;         // 0: no clipping
  double weight_decay = 0.0;
  bool bf16_autocast = false;
};

class TrainStep {
 public:
  // The optimizer covers exactly the model's trainable tensors (its requires_grad set, each
  // once); throws when there are none.
  TrainStep(nn::T5ModelImpl& model, const StepOptions& options);

  // Forward and backward of one micro-batch ([B, S] ids and mask, [B, T] labels with -100 for
  // ignored positions; moved to the model's device). Returns the micro-batch's mean loss.
  double accumulate(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                    const torch::Tensor& labels);
  // The same for one rank's share of a data-parallel micro-batch: the backward of the share's
  // mean loss times `weight` (its target tokens / (the whole micro-batch's x accumulation), so
  // that the sum over ranks is one process's gradient). Returns the share's mean loss.
  double accumulate_weighted(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                             const torch::Tensor& labels, double weight);
  // The trainable tensors, in the optimizer's order.
  const std::vector<torch::Tensor>& tensors() const { return tensors_; }
  // Clips the accumulated gradients, updates the tensors at `learning_rate` and zeroes the
  // gradients.
  void finish(double learning_rate);

  AdamW& optimizer() { return optimizer_; }
  const std::vector<std::pair<std::string, torch::Tensor>>& parameters() const {
    return optimizer_.params();
  }

 private:
  nn::T5ModelImpl& model_;
  StepOptions options_;
  AdamW optimizer_;
  std::vector<torch::Tensor> tensors_;
  torch::Device device_;
};

}  // namespace compacter::train

// LoRA (Hu et al., 2021) as Hugging Face PEFT implements it (peft/tuners/lora/layer.py, Linear;
// LoraConfig): on every target linear layer W [out, in] of both stacks,
//   y = x W^T + (lora_alpha / r) * B(A(dropout(x)))
// with A = "<linear>.lora_A.weight" [r, in] ~ kaiming_uniform(a = sqrt(5)), which is
// U(-1/sqrt(in), 1/sqrt(in)), and B = "<linear>.lora_B.weight" [out, r] = 0, so a fresh LoRA is
// the base model. Dropout (lora_dropout) acts on the branch's input in training only. Targets are
// linear layers by name (target_modules, PEFT's suffix match: "q" is every attention's q, self-
// and cross-attention); the default q,v is PEFT's for T5. Only A and B train (and the T5 norms /
// lm_head when asked). Merging folds W + (alpha / r) B A into the base weights.
// Counts: r (in + out) per target; r = 8 on q, v of t5-base: 36 attentions x 2 x 8 x 1,536 =
// 884,736.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "compacter/nn/hooks.h"
#include "compacter/peft/methods.h"

namespace compacter::peft {

// A bias-free factor holding "weight" (PEFT's nn.Linear(bias=False) lora_A / lora_B).
class LoraFactorImpl : public torch::nn::Module {
 public:
  explicit LoraFactorImpl(torch::Tensor initial);
  torch::Tensor weight;
};
TORCH_MODULE(LoraFactor);

// The hook on one linear layer: (alpha / r) * B(A(dropout(x))). A and B are registered on the
// linear layer itself (as "lora_A", "lora_B"); the hook (registered as "lora") has no tensors.
class LoraHookImpl : public nn::LinearHook {
 public:
  LoraHookImpl(LoraFactor A, LoraFactor B, double scaling, double dropout);
  torch::Tensor forward(const torch::Tensor& x) override;
  // scaling * B A [out, in]: what merging adds to W.
  torch::Tensor delta_weight() const;
  LoraFactor A, B;
  double scaling, dropout;
};
TORCH_MODULE(LoraHook);

MethodInfo lora_method();

}  // namespace compacter::peft

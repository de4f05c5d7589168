// Prompt tuning (spec §3.11): a trainable matrix P [length, d_model] prepended to the encoder's
// token embeddings (before the embedding dropout), with `length` ones prepended to the attention
// mask, in training and generation. The decoder's cross-attention thus sees length + L states.
// -R initialises P ~ U(-range, range) (range 0.5); -T copies embedding rows 0 .. length-1 of the
// loaded (pretrained) model, the corrected form of the reference's copy of random rows (§3.11).
#pragma once
#include <ATen/core/Generator.h>

#include "compacter/nn/hooks.h"
#include "compacter/nn/t5.h"
#include "compacter/peft/methods.h"

namespace compacter::peft {

class PromptImpl : public nn::InputHook {
 public:
  explicit PromptImpl(torch::Tensor initial);
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& embeds,
                                                  const torch::Tensor& mask) override;
  torch::Tensor weight;  // [length, d_model]
};
TORCH_MODULE(Prompt);

// Freezes the model and installs the prompt on the encoder as "prompt" (parameter
// "encoder.prompt.weight"). from_vocab: -T; otherwise -R with U(-init_range, init_range).
void attach_prompt(nn::T5ModelImpl& model, int64_t length, bool from_vocab, double init_range,
                   at::Generator& gen);

// The records: prompt-r (prompt_init = random) and prompt-t (vocab); both train with the task
// prefix (spec §4.2) and lengthen the encoder input by prompt_length positions.
MethodInfo prompt_r_method();
MethodInfo prompt_t_method();

}  // namespace compacter::peft

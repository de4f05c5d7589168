// Prompt tuning -R / -T (spec §3.11; 76,800 parameters for t5-base with length 100).
#include "compacter/peft/prompt.h"

#include <torch/torch.h>

#include "compacter/core/error.h"

namespace compacter::peft {

PromptImpl::PromptImpl(torch::Tensor initial) {
  weight = register_parameter("weight", std::move(initial));
}

std::pair<torch::Tensor, torch::Tensor> PromptImpl::forward(const torch::Tensor& embeds,
                                                            const torch::Tensor& mask) {
  const int64_t batch = embeds.size(0), length = weight.size(0);
  torch::Tensor p = weight.to(embeds.scalar_type()).unsqueeze(0).expand({batch, length, -1});
  torch::Tensor ones = torch::ones({batch, length}, mask.options());
  return {torch::cat({p, embeds}, 1), torch::cat({ones, mask}, 1)};
}

void attach_prompt(nn::T5ModelImpl& model, int64_t length, bool from_vocab, double init_range,
                   at::Generator& gen) {
  check(length >= 0, "prompt_length must be non-negative, got ", length);
  const torch::Tensor& table = model.shared->weight;
  torch::Tensor initial;
  if (from_vocab) {
    check(length <= table.size(0), "prompt_length ", length, " exceeds the vocabulary (",
          table.size(0), " rows) it is copied from");
    initial = table.detach().narrow(0, 0, length).clone();
  } else {
    check(init_range > 0, "prompt_init_range must be positive, got ", init_range);
    initial = torch::empty({length, table.size(1)}, torch::kFloat32);
    initial.uniform_(-init_range, init_range, gen);
    initial = initial.to(table.device(), table.scalar_type());
  }
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  model.encoder->set_input_hook("prompt", Prompt(initial).ptr());
}

}  // namespace compacter::peft

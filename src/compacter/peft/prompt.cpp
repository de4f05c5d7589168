// Prompt tuning -R / -T (spec §3.11; 76,800 parameters for t5-base with length 100).
#include "compacter/peft/prompt.h"

#include <ATen/CPUGeneratorImpl.h>
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

namespace {

MethodInfo prompt_method(const char* name, const char* summary, const char* init) {
  MethodInfo m;
  m.name = name;
  m.summary = summary;
  m.defaults = [init](PeftOptions& o) {
    o.train_layer_norms = false;
    o.prompt_init = init;
  };
  m.settings = {"train_layer_norms", "train_lm_head", "prompt_length", "prompt_init",
                "prompt_init_range"};
  m.attach = [](const PeftOptions& o, nn::T5ModelImpl& model, uint64_t seed) {
    check(o.prompt_init == "random" || o.prompt_init == "vocab", "prompt_init must be random or ",
          "vocab, got \"", o.prompt_init, "\"");
    auto gen = at::detail::createCPUGenerator(seed);
    attach_prompt(model, o.prompt_length, o.prompt_init == "vocab", o.prompt_init_range, gen);
    open_norms_and_head(model, o);
    return Attachment{};
  };
  m.category = [](const std::string& tensor) {
    return tensor.rfind("encoder.prompt.", 0) == 0 ? TensorCategory::kPrompt
                                                   : TensorCategory::kNone;
  };
  m.task_prefix = true;
  m.encoder_positions = [](const PeftOptions& o) { return o.prompt_length; };
  return m;
}

}  // namespace

MethodInfo prompt_r_method() {
  return prompt_method("prompt-r", "100 encoder prompt rows, U(-0.5, 0.5) init (§3.11)", "random");
}

MethodInfo prompt_t_method() {
  return prompt_method("prompt-t", "100 encoder prompt rows copied from the vocabulary (§3.11)",
                       "vocab");
}

}  // namespace compacter::peft

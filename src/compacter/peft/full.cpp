// Full fine-tuning's record (spec §3.13).
#include "compacter/peft/full.h"

#include <torch/torch.h>

namespace compacter::peft {

MethodInfo full_method() {
  MethodInfo m;
  m.name = "full";
  m.summary = "full fine-tuning: every T5 tensor (spec §3.13)";
  m.attach = [](const PeftOptions&, nn::T5ModelImpl& model, uint64_t) {
    for (auto& p : model.parameters()) p.set_requires_grad(true);
    return Attachment{};
  };
  m.task_prefix = true;
  m.rewrites_backbone = true;
  m.merge = [](nn::T5ModelImpl&, nn::T5ModelImpl&) {};  // the copy already is the model
  return m;
}

}  // namespace compacter::peft

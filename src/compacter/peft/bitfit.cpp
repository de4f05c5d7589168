// BitFit biases (spec §3.10, counts §7.2: 280,932 for t5-base).
#include "compacter/peft/bitfit.h"

#include <torch/torch.h>

#include <set>

namespace compacter::peft {

int64_t attach_bitfit(nn::T5ModelImpl& model, bool train_lm_head) {
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  int64_t added = 0;
  for (nn::LinearImpl* linear : model.linears()) {
    linear->enable_bias();
    ++added;
  }
  // Block norms only: the final norms are built without the flag in the reference (§3.10).
  std::set<nn::RMSNormImpl*> finals{model.encoder->final_layer_norm.get(),
                                    model.decoder->final_layer_norm.get()};
  for (nn::RMSNormImpl* ln : model.layer_norms()) {
    if (finals.count(ln)) continue;
    ln->enable_bias();
    ++added;
  }
  model.lm_head->enable_bias();
  ++added;
  for (auto& item : model.named_parameters())
    if (item.key().size() >= 4 && item.key().compare(item.key().size() - 4, 4, "bias") == 0)
      item.value().set_requires_grad(true);
  // freeze_bitfit_lm_head = true in the paper's runs; false trains the (tied) matrix too.
  if (train_lm_head) model.lm_head->matrix().set_requires_grad(true);
  return added;
}

MethodInfo bitfit_method() {
  MethodInfo m;
  m.name = "bitfit";
  m.summary = "zero biases added to every linear, block norm and the output layer (§3.10)";
  m.defaults = [](PeftOptions& o) { o.train_layer_norms = false; };
  m.settings = {"train_layer_norms", "train_lm_head"};
  m.attach = [](const PeftOptions& o, nn::T5ModelImpl& model, uint64_t) {
    attach_bitfit(model, o.train_lm_head);
    open_norms_and_head(model, o);
    return Attachment{};
  };
  m.category = [](const std::string& name) {
    const std::string tail = ".bias";  // T5 has no biases of its own
    const bool bias = name.size() >= tail.size() &&
                      name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
    return bias ? TensorCategory::kBias : TensorCategory::kNone;
  };
  m.task_prefix = true;
  return m;
}

}  // namespace compacter::peft

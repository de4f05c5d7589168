// BitFit (spec §3.10): re-introduces zero-initialised biases into every backbone linear layer
// (attention q, k, v, o; feed-forward wi / wi_0 / wi_1, wo), every block RMS norm (the output
// becomes weight * x_hat + bias; the two final norms get none) and the output layer, then trains
// only those biases (and the lm_head weight when asked: Table 7's BitFit row).
#pragma once
#include "compacter/peft/methods.h"

namespace compacter::peft {

// Freezes the model, adds the biases (requires_grad) and returns how many tensors were added.
int64_t attach_bitfit(nn::T5ModelImpl& model, bool train_lm_head);

// The record: trains with the task prefix (spec §4.2); its tensors are the ".bias" ones.
MethodInfo bitfit_method();

}  // namespace compacter::peft

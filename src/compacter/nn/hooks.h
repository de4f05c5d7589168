// Hook points where fine-tuning methods attach to T5. T5 itself never names a method: it calls
// whatever a method installed here (spec §2: adapters sit on a sublayer's output, after T5's
// pre-norm and before the sublayer dropout and residual add).
#pragma once
#include <torch/nn/module.h>

#include <utility>

namespace compacter::nn {

// Where in a block a sublayer output hook sits.
enum class HookSite { kSelfAttention, kCrossAttention, kFeedForward };
const char* hook_site_name(HookSite site);  // "self_attention", "cross_attention", "feed_forward"

// Transforms a sublayer's output y (after its output projection) before dropout and the residual
// add: h = h + Dropout(hook(y)). Modules with parameters register them as usual.
class OutputHook : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& sublayer_output) = 0;
};

// Transforms a stack's input embeddings and attention mask before the embedding dropout
// (prompt tuning prepends rows here). embeds: [B, S, d]; mask: [B, S] (1 = token, 0 = padding).
class InputHook : public torch::nn::Module {
 public:
  virtual std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& embeds,
                                                          const torch::Tensor& mask) = 0;
};

}  // namespace compacter::nn

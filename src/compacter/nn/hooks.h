// Hook points where fine-tuning methods attach to T5. T5 itself never names a method: it calls
// whatever a method installed here. The points:
//   - OutputHook on a sublayer's output (spec §2: adapters sit there, after T5's pre-norm and
//     before the sublayer dropout and residual add): SublayerImpl::set_output_hook;
//   - InputHook on a stack's input embeddings and mask (prompt tuning):
//   T5StackImpl::set_input_hook;
//   - LinearHook on any linear layer, y = x W^T + b + hook(x) (LoRA): LinearImpl::set_hook, with
//     the layers visited by their Hugging Face path (T5ModelImpl::for_each_linear);
//   - scale points, multiplying features by a tensor (its elements in order; (IA)^3): an
//     attention's keys and values (T5AttentionImpl::key_scale / value_scale) and the feed-forward
//     hidden activation, the input of wo (T5DenseImpl::hidden_scale);
//   - T5ModelImpl::before_forward (reparameterisations: Intrinsic-SAID) and enable_bias (BitFit).
// A point with nothing installed costs one null / undefined test per call.
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

// An additive term on a linear layer's output: y = x W^T (+ b) + hook(x), for x [..., in] and a
// result [..., out]. The result is cast to y's dtype.
class LinearHook : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
};

}  // namespace compacter::nn

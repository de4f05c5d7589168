// Basic T5 layers: bias-free Linear (a bias can be added, e.g. by BitFit), RMS layer norm,
// embedding table, activations. Parameter names follow Hugging Face ("weight", "bias").
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>

#include "compacter/nn/hooks.h"
#include "compacter/nn/linear_kernel.h"
#include "compacter/nn/rows.h"

namespace compacter::nn {

class Int8Weight;

// y = x W^T (+ b) (+ hook(x)). W: [out, in]. T5's linear layers have no bias; enable_bias() adds
// a zero one.
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features);
  torch::Tensor forward(const torch::Tensor& x);
  void enable_bias();  // registers "bias" = zeros(out); no-op when present
  // Installs `hook` as the submodule `name` (throws when one is installed). The hook's own
  // parameters, if any, appear as <linear path>.<name>.*; a hook may instead use tensors its
  // method registered on this layer directly (e.g. "lora_A", as Hugging Face PEFT names them).
  void set_hook(const std::string& name, std::shared_ptr<LinearHook> hook);
  const std::shared_ptr<LinearHook>& hook() const { return hook_; }
  void remove_hook();  // unregisters the hook, if any
  int64_t in_features() const;
  int64_t out_features() const;
  // Inference with W quantised to int8 (nn/int8_linear.h) instead of `weight`; nullptr: fp32.
  void set_int8(std::shared_ptr<const Int8Weight> w) { int8_ = std::move(w); }
  // For an int8 layer whose model is final: frees `weight`'s storage (it becomes an empty tensor,
  // the same parameter) and the copies kept of it. Throws unless the layer is int8.
  void free_fp32_weight();
  bool is_int8() const { return int8_ != nullptr; }
  const std::shared_ptr<const Int8Weight>& int8() const { return int8_; }
  torch::Tensor weight;
  torch::Tensor bias;  // undefined unless enabled
  // Per-row bias (nn/rows.h), used instead of `bias` when set.
  std::shared_ptr<RowTable> row_bias;
  // Copies of `weight` while it is frozen and trained around (nn/linear_kernel.h).
  const FrozenWeight& frozen_weight() const { return *frozen_; }

 private:
  std::shared_ptr<LinearHook> hook_;
  std::unique_ptr<FrozenWeight> frozen_ = std::make_unique<FrozenWeight>();
  std::shared_ptr<const Int8Weight> int8_;
  int64_t in_, out_;  // as constructed: the shape of a weight freed before this layer shared it
};
TORCH_MODULE(Linear);

// T5's layer norm: x / sqrt(mean(x^2) + eps) * weight (no mean subtraction, no bias), the variance
// computed in fp32 (HF T5LayerNorm). An optional bias is added after the scale.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  void enable_bias();
  torch::Tensor weight;
  torch::Tensor bias;
  double eps;
  // Per-row weight and bias (nn/rows.h), used instead of `weight` / `bias` when set.
  std::shared_ptr<RowTable> row_weight, row_bias;
};
TORCH_MODULE(RMSNorm);

// A table of rows: "weight" [num, dim]; forward(ids) gathers rows.
class EmbeddingTableImpl : public torch::nn::Module {
 public:
  EmbeddingTableImpl(int64_t num, int64_t dim);
  torch::Tensor forward(const torch::Tensor& ids);
  torch::Tensor weight;
};
TORCH_MODULE(EmbeddingTable);

// A scale point (nn/hooks.h): x [..., F] times the F elements of `scale` (any shape, in order),
// in x's dtype; x itself when `scale` is undefined.
// With `rows` set, each row of x is scaled by its own value (rows' table: [V, F]) instead.
torch::Tensor apply_scale(const torch::Tensor& x, const torch::Tensor& scale,
                          const std::shared_ptr<RowTable>& rows = nullptr);

// relu | gelu (erf) | gelu_new (tanh approximation, HF's NewGELUActivation) | silu.
torch::Tensor activation(const std::string& name, const torch::Tensor& x);

}  // namespace compacter::nn

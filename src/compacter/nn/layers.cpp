// Basic T5 layers: Linear, RMS norm, embedding table, activations.
#include "compacter/nn/layers.h"

#include <torch/torch.h>

#include <cmath>

#include "compacter/core/error.h"
#include "compacter/nn/int8_linear.h"
#include "compacter/nn/linear_kernel.h"
#include "compacter/nn/rms_norm.h"

namespace compacter::nn {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features)
    : in_(in_features), out_(out_features) {
  weight = register_parameter("weight", torch::empty({out_features, in_features}));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor y;
  if (int8_) {
    y = int8_->forward(x);
    if (bias.defined() && !row_bias) y = y + bias;
  } else {
    y = nn::linear(x, weight, row_bias ? torch::Tensor() : bias, frozen_.get());
  }
  if (row_bias) y = y + row_bias->for_rows(y);
  if (hook_) return (y + hook_->forward(x)).to(y.scalar_type());
  return y;
}

// A freed weight (free_fp32_weight) is empty: the int8 copy knows the shape.
int64_t LinearImpl::in_features() const {
  if (weight.dim() == 2) return weight.size(1);
  return int8_ ? int8_->in_features() : in_;  // freed (free_fp32_weight), here or in its source
}

int64_t LinearImpl::out_features() const {
  if (weight.dim() == 2) return weight.size(0);
  return int8_ ? int8_->out_features() : out_;
}

void LinearImpl::free_fp32_weight() {
  check(int8_ != nullptr, "only an int8 layer's fp32 weight can be freed");
  torch::NoGradGuard no_grad;
  weight.set_();  // the tensor every holder of this parameter sees, now [0] with no storage
  frozen_->clear();
}

void LinearImpl::set_hook(const std::string& name, std::shared_ptr<LinearHook> hook) {
  check(!hook_, "a hook is already installed on this linear layer");
  hook_ = register_module(name, std::move(hook));
}

void LinearImpl::remove_hook() {
  if (!hook_) return;
  for (const auto& item : named_children())
    if (item.value().get() == hook_.get()) {
      unregister_module(item.key());
      break;
    }
  hook_.reset();
}

void LinearImpl::enable_bias() {
  if (bias.defined()) return;
  bias = register_parameter("bias", torch::zeros({out_features()}, weight.options()));
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  // One fused kernel where it applies (nn/rms_norm.h); per-row weights scale the normalised rows.
  torch::Tensor h = row_weight
                        ? row_weight->for_rows(x) * rms_normalise(x, eps, weight.scalar_type())
                        : rms_norm(x, weight, eps);
  if (row_bias)
    h = h + row_bias->for_rows(h);
  else if (bias.defined())
    h = h + bias;
  return h;
}

void RMSNormImpl::enable_bias() {
  if (bias.defined()) return;
  bias = register_parameter("bias", torch::zeros({weight.size(0)}, weight.options()));
}

EmbeddingTableImpl::EmbeddingTableImpl(int64_t num, int64_t dim) {
  weight = register_parameter("weight", torch::empty({num, dim}));
}

torch::Tensor EmbeddingTableImpl::forward(const torch::Tensor& ids) {
  return torch::embedding(weight, ids);
}

torch::Tensor apply_scale(const torch::Tensor& x, const torch::Tensor& scale,
                          const std::shared_ptr<RowTable>& rows) {
  if (rows) return (x * rows->for_rows(x)).to(x.scalar_type());
  if (!scale.defined()) return x;
  return (x * scale.reshape({-1})).to(x.scalar_type());
}

torch::Tensor activation(const std::string& name, const torch::Tensor& x) {
  if (name == "relu") return torch::relu(x);
  if (name == "gelu") return torch::gelu(x);
  if (name == "gelu_new") {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    const double c = std::sqrt(2.0 / M_PI);
    return 0.5 * x * (1.0 + torch::tanh(c * (x + 0.044715 * torch::pow(x, 3.0))));
  }
  if (name == "silu") return torch::silu(x);
  throw Error(cat("unknown activation \"", name, "\" (expected relu, gelu, gelu_new or silu)"));
}

}  // namespace compacter::nn

// Adapter controller and its dense / low-rank projections (spec §2, §3.2, §3.5, §9 #8, #19).
#include "compacter/peft/adapters.h"

#include <torch/torch.h>

#include "compacter/core/error.h"
#include "compacter/nn/layers.h"
#include "compacter/nn/linear_kernel.h"

namespace compacter::peft {

DenseProjectionImpl::DenseProjectionImpl(int64_t in, int64_t out, at::Generator& gen) {
  weight = register_parameter("weight", torch::empty({out, in}).normal_(0.0, 0.01, gen));
  bias = register_parameter("bias", torch::zeros({out}));
}

torch::Tensor DenseProjectionImpl::forward(const torch::Tensor& x) {
  return nn::linear(x, weight, bias);
}

LowRankProjectionImpl::LowRankProjectionImpl(int64_t in, int64_t out, int64_t rank, WeightInit init,
                                             at::Generator& gen) {
  check(rank >= 1, "low-rank adapter rank must be positive, got ", rank);
  check(init != WeightInit::kNormal,
        "low-rank adapters take glorot-uniform or glorot-normal weights, not normal");
  torch::Tensor left = torch::empty({in, rank}), right = torch::empty({rank, out});
  init_slices(left, init, 0.0, gen);
  init_slices(right, init, 0.0, gen);
  W_left = register_parameter("W_left", left);
  W_right = register_parameter("W_right", right);
  b = register_parameter("b", torch::zeros({out}));
}

torch::Tensor LowRankProjectionImpl::weight() const {
  return torch::matmul(W_left, W_right);
}

torch::Tensor LowRankProjectionImpl::forward(const torch::Tensor& x) {
  return nn::linear(x, weight().t(), {}) + b;
}

namespace {

std::shared_ptr<Projection> make_projection(const AdapterOptions& o, int64_t in, int64_t out,
                                            at::Generator& gen, const torch::Tensor& rule) {
  switch (o.kind) {
    case ProjectionKind::kDense:
      return std::make_shared<DenseProjectionImpl>(in, out, gen);
    case ProjectionKind::kLowRank:
      return std::make_shared<LowRankProjectionImpl>(in, out, o.rank, o.weight_init, gen);
    case ProjectionKind::kPhm:
      return std::make_shared<PhmLinearImpl>(in, out, o.phm, gen, rule);
  }
  throw Error("unknown projection kind");
}

}  // namespace

AdapterImpl::AdapterImpl(const AdapterOptions& o, at::Generator& gen, torch::Tensor shared_rule)
    : activation_(o.non_linearity == "swish" ? "silu" : o.non_linearity) {
  check(o.d_model >= 1 && o.bottleneck >= 1, "adapter sizes must be positive, got d_model ",
        o.d_model, " and bottleneck ", o.bottleneck);
  nn::activation(activation_, torch::zeros({1}));  // throws Error for an unknown name
  if (o.layer_norm_before)
    pre_layer_norm = register_module(
        "pre_layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model})));
  down_sampler = register_module("down_sampler",
                                 make_projection(o, o.d_model, o.bottleneck, gen, shared_rule));
  up_sampler =
      register_module("up_sampler", make_projection(o, o.bottleneck, o.d_model, gen, shared_rule));
  if (o.layer_norm_after)
    post_layer_norm = register_module(
        "post_layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model})));
}

torch::Tensor AdapterImpl::forward(const torch::Tensor& y) {
  torch::Tensor z = pre_layer_norm ? pre_layer_norm->forward(y) : y;
  torch::Tensor out = up_sampler->forward(nn::activation(activation_, down_sampler->forward(z)));
  if (post_layer_norm) out = post_layer_norm->forward(out);
  return out + y;
}

}  // namespace compacter::peft

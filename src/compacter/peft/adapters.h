// The adapter controller (spec §2; paper eq. (2)): an nn::OutputHook computing
//   z = LN_pre(y) (optional), out = Up(act(Down(z))), out = LN_post(out) (optional), return out + y
// on a sublayer output y. Down / Up are dense Linear (Adapter, spec §3.2, N(0, 0.01) weights,
// §9 #8), LowRank (§3.5) or PHM layers (§3.6-§3.9).
#pragma once
#include <ATen/core/Generator.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>

#include "compacter/nn/hooks.h"
#include "compacter/peft/phm.h"
#include "compacter/peft/projection.h"

namespace compacter::peft {

// y = x W^T + b; W [out, in] ~ N(0, 0.01), b = 0 (the reference T5 init hook, spec §3.2, §9 #8).
class DenseProjectionImpl : public Projection {
 public:
  DenseProjectionImpl(int64_t in_features, int64_t out_features, at::Generator& gen);
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor weight, bias;
};
TORCH_MODULE(DenseProjection);

// y = x (W_left W_right) + b; W_left [in, r], W_right [r, out], Glorot init with gain sqrt(2),
// b = 0 (spec §3.5). A matrix product, so rank r > 1 works (spec §9 #10).
class LowRankProjectionImpl : public Projection {
 public:
  LowRankProjectionImpl(int64_t in_features, int64_t out_features, int64_t rank, WeightInit init,
                        at::Generator& gen);
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor weight() const;  // materialised [in, out]
  torch::Tensor W_left, W_right, b;
};
TORCH_MODULE(LowRankProjection);

enum class ProjectionKind { kDense, kLowRank, kPhm };

struct AdapterOptions {
  int64_t d_model = 768;
  int64_t bottleneck = 24;  // d
  ProjectionKind kind = ProjectionKind::kDense;
  std::string non_linearity = "gelu_new";  // relu | gelu | gelu_new | silu (= swish)
  bool layer_norm_before = false;          // nn.LayerNorm on the input (spec §9 #19: off)
  bool layer_norm_after = false;           // nn.LayerNorm on the core's output
  int64_t rank = 1;                        // LowRank rank
  WeightInit weight_init = WeightInit::kGlorotUniform;  // LowRank / PHM weights
  PhmOptions phm;                                       // PHM layers
};

// Submodules: "pre_layer_norm", "down_sampler", "up_sampler", "post_layer_norm".
class AdapterImpl : public nn::OutputHook {
 public:
  // shared_rule: the model-level A for PHM layers with a shared rule (undefined otherwise).
  AdapterImpl(const AdapterOptions& options, at::Generator& gen, torch::Tensor shared_rule = {});
  torch::Tensor forward(const torch::Tensor& y) override;
  std::shared_ptr<Projection> down_sampler, up_sampler;
  torch::nn::LayerNorm pre_layer_norm{nullptr}, post_layer_norm{nullptr};

 private:
  std::string activation_;
};
TORCH_MODULE(Adapter);

}  // namespace compacter::peft

// The common interface of an adapter's down / up projection (spec §2: Down and Up are Linear,
// LowRank or PHM layers). Every projection maps x [..., in] -> y [..., out] and has a bias.
#pragma once
#include <torch/nn/module.h>

namespace compacter::peft {

class Projection : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
};

}  // namespace compacter::peft

// Central finite differences for gradient checks: the independent reference for autograd.
#pragma once
#include <torch/torch.h>

#include <functional>

namespace compacter::testing {

// (loss(x_i + eps) - loss(x_i - eps)) / (2 eps) for entry i of `flat` (a flat view of a
// parameter), leaving the entry as it was. Call under NoGradGuard.
inline double central_difference(torch::Tensor& flat, int64_t i,
                                 const std::function<torch::Tensor()>& loss, double eps) {
  const double orig = flat[i].item<double>();
  flat[i].fill_(orig + eps);
  const double up = loss().item<double>();
  flat[i].fill_(orig - eps);
  const double down = loss().item<double>();
  flat[i].fill_(orig);
  return (up - down) / (2 * eps);
}

}  // namespace compacter::testing

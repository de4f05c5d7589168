// The gradient check of finite_difference.h: autograd against central differences, entry by
// entry, with a failure message that names each failing tensor entry.
#include "support/finite_difference.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "support/tensor_near.h"

namespace compacter::testing {
namespace {

std::string gradient_number(double v) {
  std::ostringstream s;
  s.precision(10);
  s << v;
  return s.str();
}

std::string describe(const GradientEntry& e) {
  std::ostringstream s;
  s << e.tensor << e.index << " (flat " << e.flat << "): autograd " << gradient_number(e.autograd)
    << ", finite difference " << gradient_number(e.finite_difference) << ", |difference| "
    << gradient_number(std::abs(e.autograd - e.finite_difference));
  return s.str();
}

}  // namespace

::testing::AssertionResult GradientCheck::result() const {
  if (checked > 0 && failed == 0) return ::testing::AssertionSuccess();
  auto r = ::testing::AssertionFailure();
  if (checked == 0) return r << "no gradient entry was checked";
  r << failed << " of " << checked << " checked gradient entries differ from central differences"
    << " (pass: |autograd - fd| <= " << gradient_number(options.atol);
  if (options.relative_to_largest_gradient) r << " * largest |gradient| " << gradient_number(scale);
  r << " + " << gradient_number(options.rtol) << " * |fd|; eps " << gradient_number(options.eps)
    << ")";
  if (has_worst) r << "\n  worst: " << describe(worst);
  r << "\n  first failing:";
  for (const GradientEntry& e : first_failures) r << "\n    " << describe(e);
  return r;
}

GradientCheck check_gradients(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                              const std::function<torch::Tensor()>& loss,
                              const GradientCheckOptions& options) {
  GradientCheck out;
  out.options = options;
  for (const auto& [name, t] : tensors) {
    if (!t.requires_grad() || !t.is_leaf())
      throw std::invalid_argument("check_gradients: " + name + " is not a leaf requiring grad");
    if (t.grad().defined()) t.mutable_grad().reset();
  }
  loss().backward();
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& [name, t] : tensors)
    grads.push_back(t.grad().defined() ? t.grad().detach().clone() : torch::zeros_like(t));
  if (options.relative_to_largest_gradient) {
    out.scale = 0.0;
    for (const auto& g : grads) out.scale = std::max(out.scale, g.abs().max().item<double>());
  }
  double worst = -1.0;
  for (size_t k = 0; k < tensors.size(); ++k) {
    const std::string& name = tensors[k].first;
    torch::Tensor param = tensors[k].second;
    torch::Tensor flat = param.view({-1});
    torch::Tensor g = grads[k].reshape({-1});
    const int64_t n = flat.numel();
    const int64_t step = options.samples_per_tensor > 0 ? 1 + n / options.samples_per_tensor : 1;
    for (int64_t i = 0; i < n; i += step) {
      GradientEntry e;
      e.tensor = name;
      e.flat = i;
      e.index = multi_index(i, param.sizes());
      e.finite_difference = central_difference(flat, i, loss, options.eps);
      e.autograd = g[i].item<double>();
      ++out.checked;
      const double diff = std::abs(e.autograd - e.finite_difference);
      const bool ok =
          diff <= options.atol * out.scale + options.rtol * std::abs(e.finite_difference);
      const double rank = std::isnan(diff) ? INFINITY : diff;
      if (rank > worst) {
        worst = rank;
        out.worst = e;
        out.has_worst = true;
      }
      if (ok) continue;
      ++out.failed;
      if (static_cast<int>(out.first_failures.size()) < kGradientFailuresShown)
        out.first_failures.push_back(e);
    }
  }
  return out;
}

}  // namespace compacter::testing

// Central finite differences for gradient checks: the independent reference for autograd.
//
// check_gradients(named tensors, loss, options) runs loss().backward() once, then compares each
// checked entry's autograd gradient g with (loss(x + eps) - loss(x - eps)) / (2 eps); an entry
// passes when |g - fd| <= atol * scale + rtol * |fd|, where scale is 1, or the largest |g| over all
// the tensors when options.relative_to_largest_gradient is set. Its result() names, on failure,
// every tensor (by its name in named_parameters()) with its flat and multi-dimensional index and
// both values:
//
//   auto check = testing::check_gradients(peft::trainable_named_parameters(*model), loss_fn, o);
//   EXPECT_GT(check.checked, 20);
//   EXPECT_TRUE(check.result());
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

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

struct GradientCheckOptions {
  double eps = 1e-6;  // the central-difference step
  // An entry passes when |autograd - fd| <= atol * scale + rtol * |fd|.
  double atol = 0.0;
  double rtol = 0.0;
  bool relative_to_largest_gradient = false;  // scale: the largest |autograd| entry (else 1)
  // 0: every entry of every tensor; k: entries 0, s, 2s, ... with s = 1 + numel / k.
  int64_t samples_per_tensor = 0;
};

// One compared entry.
struct GradientEntry {
  std::string tensor;  // the name given with it
  int64_t flat = 0;    // row-major index
  std::string index;   // the same as a multi-dimensional index, "[2, 0]"
  double autograd = 0.0;
  double finite_difference = 0.0;
};

struct GradientCheck {
  GradientCheckOptions options;
  int64_t checked = 0;
  double scale = 1.0;
  int64_t failed = 0;
  std::vector<GradientEntry> first_failures;  // up to kGradientFailuresShown, in checking order
  GradientEntry worst;                        // the largest |autograd - fd| of all checked
  bool has_worst = false;

  // Success, or a failure naming the worst and the first failing entries.
  ::testing::AssertionResult result() const;
};

constexpr int kGradientFailuresShown = 5;

// Clears the tensors' gradients, runs loss().backward() and compares (see the top of this file).
// The tensors must be leaves that require grad; one that receives no gradient counts as zero.
// Entries are restored exactly after each difference.
GradientCheck check_gradients(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                              const std::function<torch::Tensor()>& loss,
                              const GradientCheckOptions& options);

}  // namespace compacter::testing

// Tests of the test helpers themselves: EXPECT_TENSOR_NEAR (support/tensor_near.h) fails on a
// shape mismatch, a value out of tolerance, NaN and incomparable dtypes, and says where; the
// gradient check (support/finite_difference.h) fails on a wrong gradient and names the tensor,
// the index and both values.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "support/finite_difference.h"
#include "support/tensor_near.h"

namespace compacter::testing {
namespace {

// 2 x 3 float tensor 0..5.
torch::Tensor grid() {
  return torch::arange(6, torch::kFloat).view({2, 3});
}

// grid() with entry [1, 2] moved by `delta`.
torch::Tensor grid_moved(double delta) {
  torch::Tensor t = grid();
  t[1][2] += delta;
  return t;
}

TEST(TensorNear, PassesWithinTolerance) {
  EXPECT_TENSOR_NEAR(grid(), grid(), 0);
  EXPECT_TENSOR_NEAR(grid_moved(1e-6), grid(), 2e-6);
  EXPECT_TENSOR_NEAR(grid_moved(0.5), grid(), 0, 0.1);       // 0.5 <= 0.1 * 5
  EXPECT_TENSOR_NEAR(grid().to(torch::kDouble), grid(), 0);  // float64 against float32
  EXPECT_TENSOR_NEAR(grid().to(torch::kBFloat16), grid(), 0);
  EXPECT_TENSOR_NEAR(torch::tensor({1, 2}), torch::tensor({1, 2}, torch::kInt), 0);
  EXPECT_TENSOR_NEAR(torch::full({2}, INFINITY), torch::full({2}, INFINITY), 0);
  ASSERT_TENSOR_NEAR(torch::zeros({0, 4}), torch::zeros({0, 4}), 0);
}

TEST(TensorNear, FailsOnAShapeMismatch) {
  EXPECT_NONFATAL_FAILURE(EXPECT_TENSOR_NEAR(grid(), grid().view({3, 2}), 1.0),
                          "shapes differ: actual [2, 3], expected [3, 2]");
  EXPECT_NONFATAL_FAILURE(EXPECT_TENSOR_NEAR(grid(), grid().view({6}), 1.0), "shapes differ");
  // No broadcasting: [1, 3] against [2, 3] is a mismatch even where allclose would pass.
  EXPECT_NONFATAL_FAILURE(EXPECT_TENSOR_NEAR(torch::zeros({1, 3}), torch::zeros({2, 3}), 1.0),
                          "shapes differ");
  EXPECT_FATAL_FAILURE(ASSERT_TENSOR_NEAR(torch::zeros({2}), torch::zeros({3}), 1.0),
                       "shapes differ");
}

TEST(TensorNear, FailsOnAValueMismatchAndSaysWhere) {
  EXPECT_NONFATAL_FAILURE(EXPECT_TENSOR_NEAR(grid_moved(0.25), grid(), 0.1),
                          "1 of 6 elements out of tolerance");
  EXPECT_NONFATAL_FAILURE(EXPECT_TENSOR_NEAR(grid_moved(0.25), grid(), 0.1),
                          "max |actual - expected| = 0.25 at [1, 2]: actual 5.25, expected 5");
  EXPECT_NONFATAL_FAILURE(EXPECT_TENSOR_NEAR(grid_moved(0.25), grid(), 0.1),
                          "grid_moved(0.25) vs grid() (atol 0.1, rtol 0)");
  // Just over the tolerance fails; rtol is relative to |expected| (5 here).
  EXPECT_NONFATAL_FAILURE(EXPECT_TENSOR_NEAR(grid_moved(0.5), grid(), 0.4), "[1, 2]: 5.5, 5");
  EXPECT_NONFATAL_FAILURE(EXPECT_TENSOR_NEAR(grid_moved(0.5), grid(), 0, 0.09), "out of tolerance");
  EXPECT_FATAL_FAILURE(ASSERT_TENSOR_NEAR(grid_moved(0.25), grid(), 0.1), "out of tolerance");
}

TEST(TensorNear, ListsTheFirstDifferingPairs) {
  // Every entry off by its index + 1: the worst is the last, the first five are listed.
  EXPECT_NONFATAL_FAILURE(
      EXPECT_TENSOR_NEAR(grid() + torch::arange(1, 7, torch::kFloat).view({2, 3}), grid(), 0.5),
      "max |actual - expected| = 6 at [1, 2]: actual 11, expected 5\n"
      "  first differing (actual, expected):\n"
      "    [0, 0]: 1, 0\n"
      "    [0, 1]: 3, 1\n"
      "    [0, 2]: 5, 2\n"
      "    [1, 0]: 7, 3\n"
      "    [1, 1]: 9, 4\n"
      "    ... and 1 more");
}

TEST(TensorNear, NanIsNearNothing) {
  EXPECT_NONFATAL_FAILURE(EXPECT_TENSOR_NEAR(grid_moved(NAN), grid(), 1e9),
                          "max |actual - expected| = nan at [1, 2]");
  EXPECT_NONFATAL_FAILURE(EXPECT_TENSOR_NEAR(torch::full({1}, NAN), torch::full({1}, NAN), 1.0),
                          "1 of 1 elements out of tolerance");
}

TEST(TensorNear, FailsOnIncomparableDtypes) {
  EXPECT_NONFATAL_FAILURE(EXPECT_TENSOR_NEAR(grid(), grid().to(torch::kLong), 1.0),
                          "dtypes Float and Long cannot be compared");
  EXPECT_NONFATAL_FAILURE(
      EXPECT_TENSOR_NEAR(torch::ones({2}, torch::kBool), torch::ones({2}, torch::kInt), 1.0),
      "cannot be compared");
  EXPECT_NONFATAL_FAILURE(EXPECT_TENSOR_NEAR(torch::Tensor(), grid(), 1.0), "undefined tensor");
}

TEST(TensorNear, MultiIndexIsRowMajor) {
  EXPECT_EQ(multi_index(0, {2, 3, 4}), "[0, 0, 0]");
  EXPECT_EQ(multi_index(23, {2, 3, 4}), "[1, 2, 3]");
  EXPECT_EQ(multi_index(13, {2, 3, 4}), "[1, 0, 1]");
  EXPECT_EQ(multi_index(0, {}), "[]");
}

// loss = sum(w^2) and sum(v^3): exact gradients 2w and 3v^2.
TEST(GradientCheck, PassesForCorrectGradients) {
  torch::Tensor w = torch::tensor({{0.5, -1.0}, {2.0, 0.25}}, torch::kDouble).requires_grad_();
  torch::Tensor v = torch::tensor({1.5, -0.5, 0.3}, torch::kDouble).requires_grad_();
  auto loss = [&] { return w.pow(2).sum() + v.pow(3).sum(); };
  GradientCheckOptions o;
  o.eps = 1e-6;
  o.atol = 1e-8;
  const GradientCheck check = check_gradients({{"w", w}, {"v", v}}, loss, o);
  EXPECT_EQ(check.checked, 7);
  EXPECT_EQ(check.failed, 0);
  EXPECT_TRUE(check.result());
  // The entries are restored exactly.
  EXPECT_TENSOR_NEAR(w, torch::tensor({{0.5, -1.0}, {2.0, 0.25}}, torch::kDouble), 0);
  // Sampling: every (1 + numel / 2)-th entry of each tensor.
  o.samples_per_tensor = 2;
  EXPECT_EQ(check_gradients({{"w", w}, {"v", v}}, loss, o).checked, 2 + 2);
}

// A gradient that autograd gets wrong on purpose: w * w.detach() has autograd gradient w, while
// the finite difference of the same function is 2w.
TEST(GradientCheck, FailureNamesTheTensorTheIndexAndBothValues) {
  torch::Tensor w = torch::tensor({{0.5, -1.0}, {2.0, 0.25}}, torch::kDouble).requires_grad_();
  torch::Tensor ok = torch::tensor({1.0}, torch::kDouble).requires_grad_();
  auto loss = [&] { return (w * w.detach()).sum() + ok.pow(2).sum(); };
  GradientCheckOptions o;
  o.eps = 1e-3;  // exact for squares up to rounding, which this step keeps far below 1e-9
  o.atol = 1e-6;
  o.rtol = 1e-6;
  const GradientCheck check =
      check_gradients({{"ok.weight", ok}, {"encoder.block.0.w", w}}, loss, o);
  EXPECT_EQ(check.checked, 5);
  EXPECT_EQ(check.failed, 4);
  const ::testing::AssertionResult r = check.result();
  ASSERT_FALSE(r);
  const std::string m = r.message();
  EXPECT_NE(m.find("4 of 5 checked gradient entries differ"), std::string::npos) << m;
  // The worst entry: w[1, 0] = 2, autograd 2, finite difference 4.
  EXPECT_NE(m.find("worst: encoder.block.0.w[1, 0] (flat 2): autograd 2, finite difference 4"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("encoder.block.0.w[0, 1] (flat 1): autograd -1, finite difference -2"),
            std::string::npos)
      << m;
  EXPECT_EQ(m.find("ok.weight"), std::string::npos) << m;
}

TEST(GradientCheck, ToleranceRelativeToTheLargestGradient) {
  // (w[0] - w[0].detach()) is 0 for finite differences but adds 1e-3 to autograd's w[0]
  // gradient: autograd (1.001, 100) against finite differences (1, 100).
  torch::Tensor w = torch::tensor({0.5, 50.0}, torch::kDouble).requires_grad_();
  auto loss = [&] { return w.pow(2).sum() + 1e-3 * (w[0] - w[0].detach()); };
  GradientCheckOptions o;
  o.eps = 1e-4;
  o.atol = 1e-4;
  o.relative_to_largest_gradient = true;  // passes: 1e-3 <= 1e-4 * 100
  const GradientCheck relative = check_gradients({{"w", w}}, loss, o);
  EXPECT_DOUBLE_EQ(relative.scale, 100.0);
  EXPECT_TRUE(relative.result());
  o.relative_to_largest_gradient = false;  // fails: 1e-3 > 1e-4
  const GradientCheck absolute = check_gradients({{"w", w}}, loss, o);
  EXPECT_EQ(absolute.failed, 1);
  EXPECT_NE(std::string(absolute.result().message()).find("w[0] (flat 0)"), std::string::npos)
      << absolute.result().message();
}

}  // namespace
}  // namespace compacter::testing

// EXPECT_TENSOR_NEAR / ASSERT_TENSOR_NEAR: element-wise |actual - expected| <= atol + rtol *
// |expected| (torch.allclose's rule, without broadcasting and with NaN never near anything), after
// checking that the shapes are equal and the dtypes of the same kind (floating with floating,
// integral with integral, bool with bool; float32 against a float64 reference is fine). On failure
// the message says how many elements are out of tolerance, the largest |actual - expected| and
// its multi-dimensional index, and the first few differing (actual, expected) pairs, instead of
// one scalar.
//
//   EXPECT_TENSOR_NEAR(out.logits, ref["logits"], 1e-5);        // atol only
//   EXPECT_TENSOR_NEAR(grad, reference, 1e-12, 1e-9);           // atol, rtol
//   EXPECT_TENSOR_NEAR(ids, expected_ids, 0);                   // exact
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace compacter::testing {

// The tolerance of EXPECT_TENSOR_NEAR: absolute, plus relative to |expected|.
struct Tolerance {
  double atol = 0.0;
  double rtol = 0.0;
};

// "[1, 0, 3]" for the row-major flat index `flat` of a tensor of `sizes`.
std::string multi_index(int64_t flat, c10::IntArrayRef sizes);

// The predicate-format function behind EXPECT_TENSOR_NEAR (see the top of this file).
::testing::AssertionResult tensor_near(const char* actual_text, const char* expected_text,
                                       const char* tolerance_text, const torch::Tensor& actual,
                                       const torch::Tensor& expected, const Tolerance& tolerance);

// How many differing pairs a failure lists.
constexpr int kTensorNearPairsShown = 5;

}  // namespace compacter::testing

#define EXPECT_TENSOR_NEAR(actual, expected, ...)                          \
  EXPECT_PRED_FORMAT3(::compacter::testing::tensor_near, actual, expected, \
                      (::compacter::testing::Tolerance{__VA_ARGS__}))
#define ASSERT_TENSOR_NEAR(actual, expected, ...)                          \
  ASSERT_PRED_FORMAT3(::compacter::testing::tensor_near, actual, expected, \
                      (::compacter::testing::Tolerance{__VA_ARGS__}))

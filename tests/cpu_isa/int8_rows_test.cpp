// nn::int8_rows_product and int8_rows_range (the int8 kernel, int8_rows.h) against naive loops:
// each row's grid u = nearbyint(clamp((x - lo[m]) c[m], 0, 255)) and the int32 sums computed here
// element by element, the result in double; the packing undone by unpack_int8_rows. Shapes that are
// not multiples of the kernel's tiles (64 outputs, groups of 4 inputs) and row counts that are not
// multiples of its 4-row passes. Skipped on a CPU without AVX-512 VNNI, where the kernel is never
// called.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "compacter/nn/int8_rows.h"

namespace compacter::nn {
namespace {

TEST(Int8Rows, ProductEqualsTheNaiveSums) {
  if (!int8_rows_available()) GTEST_SKIP() << "this CPU lacks AVX-512 VNNI";
  std::mt19937 gen(7);
  std::uniform_int_distribution<int> weight(-127, 127);
  std::normal_distribution<float> normal(0.5f, 2.0f);
  std::uniform_real_distribution<float> positive(0.001f, 0.1f);
  for (auto [rows, in, out] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1},
                               {1, 512, 512},
                               {2, 5, 63},
                               {3, 4, 64},
                               {4, 7, 65},
                               {5, 515, 130},
                               {9, 2048, 200},
                               {33, 40, 300}}) {
    SCOPED_TRACE(::testing::Message() << rows << "x" << in << "x" << out);
    std::vector<int8_t> q(static_cast<size_t>(out * in));
    for (auto& v : q) v = static_cast<int8_t>(weight(gen));
    std::vector<float> scales(static_cast<size_t>(out)), row_sums(scales.size());
    for (int64_t n = 0; n < out; ++n) {
      scales[n] = positive(gen);
      int64_t sum = 0;
      for (int64_t k = 0; k < in; ++k) sum += q[n * in + k];
      row_sums[n] = scales[n] * static_cast<float>(sum);
    }
    std::vector<float> x(static_cast<size_t>(rows * in));
    for (auto& v : x) v = normal(gen);
    // Each row its own range, narrower than x's: values below lo and above the grid's top clamp.
    std::vector<float> lo(static_cast<size_t>(rows)), c(lo.size());
    for (int64_t m = 0; m < rows; ++m) {
      lo[m] = -1.0f + 0.1f * static_cast<float>(m % 5);
      c[m] = 255.0001f / (4.0f + static_cast<float>(m % 3));
    }
    const Int8RowsWeight packed = pack_int8_rows(q.data(), out, in);
    EXPECT_EQ(unpack_int8_rows(packed), q);
    std::vector<float> y(static_cast<size_t>(rows * out), std::nanf(""));
    int8_rows_product(packed, x.data(), rows, lo.data(), c.data(), scales.data(), row_sums.data(),
                      y.data());
    double worst = 0;
    for (int64_t m = 0; m < rows; ++m)
      for (int64_t n = 0; n < out; ++n) {
        int64_t acc = 0;
        for (int64_t k = 0; k < in; ++k) {
          const float shifted = std::min(255.0f, std::max(0.0f, (x[m * in + k] - lo[m]) * c[m]));
          acc += static_cast<int64_t>(std::nearbyint(shifted)) * q[n * in + k];
        }
        const double term = static_cast<double>(acc) * scales[n] / c[m];
        const double want = term + static_cast<double>(lo[m]) * row_sums[n];
        const double got = y[m * out + n];
        ASSERT_TRUE(std::isfinite(got)) << m << "," << n;
        // Float rounding of the two terms only: a few ulps of each.
        const double tol = 4e-7 * (std::abs(term) + std::abs(lo[m] * row_sums[n])) + 1e-30;
        worst = std::max(worst, std::abs(got - want) / tol);
      }
    EXPECT_LE(worst, 1.0);
  }
}

// With lo = 0 and c = 1 the grid is the integers: ties round to even, the ends clamp, and the
// result is the exact integer sum.
TEST(Int8Rows, RoundsTiesToEvenAndClamps) {
  if (!int8_rows_available()) GTEST_SKIP() << "this CPU lacks AVX-512 VNNI";
  const std::vector<float> x = {0.5f, 1.5f, 2.5f, -3.0f, 300.0f, 254.5f, 7.49f};
  const int64_t in = static_cast<int64_t>(x.size());
  const std::vector<float> u = {0, 2, 2, 0, 255, 254, 7};  // the grid points expected
  std::vector<int8_t> q(static_cast<size_t>(in * 3));
  for (int64_t k = 0; k < in; ++k) {
    q[k] = 1;                                             // row 0: the sum of u
    q[in + k] = static_cast<int8_t>(k == 4 ? -127 : 0);   // row 1: -127 u[4]
    q[2 * in + k] = static_cast<int8_t>(k % 2 ? 3 : -2);  // row 2: mixed signs
  }
  const std::vector<float> ones(3, 1.0f), zeros(3, 0.0f);
  std::vector<float> y(3);
  int8_rows_product(pack_int8_rows(q.data(), 3, in), x.data(), 1, zeros.data(), ones.data(),
                    ones.data(), zeros.data(), y.data());
  double want0 = 0, want2 = 0;
  for (int64_t k = 0; k < in; ++k) {
    want0 += u[k];
    want2 += u[k] * (k % 2 ? 3 : -2);
  }
  EXPECT_EQ(y[0], want0);
  EXPECT_EQ(y[1], -127.0 * 255);
  EXPECT_EQ(y[2], want2);
}

TEST(Int8Rows, RangeFindsTheExtremesAnywhereAndReportsNaN) {
  if (!int8_rows_available()) GTEST_SKIP() << "this CPU lacks AVX-512 VNNI";
  for (int64_t n : {1, 15, 16, 17, 33, 100}) {
    for (int64_t at = 0; at < n; at += std::max<int64_t>(1, n / 5)) {
      SCOPED_TRACE(::testing::Message() << n << " values, extremes at " << at);
      std::vector<float> x(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((i * 37) % 11) - 5.0f;
      x[at] = -100.0f;
      x[n - 1 - at] = n == 1 ? -100.0f : 100.0f;
      float lo = 0, hi = 0;
      int8_rows_range(x.data(), n, lo, hi);
      EXPECT_EQ(lo, -100.0f);
      EXPECT_EQ(hi, n == 1 ? -100.0f : 100.0f);
      x[n - 1 - at] = std::numeric_limits<float>::quiet_NaN();
      int8_rows_range(x.data(), n, lo, hi);
      EXPECT_TRUE(std::isnan(lo) && std::isnan(hi));
    }
  }
}

}  // namespace
}  // namespace compacter::nn

// The trial GEMM's check (compacter/kernels/gemm_check.h): the reference against hand-computed
// values, a correct fp32 result (computed here by other loops, in float) accepted, and wrong ones
// (a perturbed element, a transposed result, NaN, infinity, a wrong transposition) rejected.
#include "compacter/kernels/gemm_check.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace compacter::kernels {
namespace {

// C = op(A) op(B) in float, summing k from the end (another order than the reference's).
std::vector<float> float_gemm(const GemmCase& c) {
  std::vector<float> out(static_cast<size_t>(c.m * c.n));
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < c.n; ++j) {
      float sum = 0;
      for (int64_t p = c.k - 1; p >= 0; --p) {
        const float a = c.transa == 'N' ? c.a[i + p * c.m] : c.a[p + i * c.k];
        const float b = c.transb == 'N' ? c.b[p + j * c.k] : c.b[j + p * c.n];
        sum += a * b;
      }
      out[i + j * c.m] = sum;
    }
  return out;
}

TEST(KernelsGemmCheck, ReferenceMatchesHandComputedValues) {
  GemmCase c = make_gemm_case('N', 'N', 2, 2, 2, 7);
  // Column-major: A = [a0 a2; a1 a3], B = [b0 b2; b1 b3].
  const auto& a = c.a;
  const auto& b = c.b;
  EXPECT_DOUBLE_EQ(c.reference[0], double(a[0]) * b[0] + double(a[2]) * b[1]);
  EXPECT_DOUBLE_EQ(c.reference[1], double(a[1]) * b[0] + double(a[3]) * b[1]);
  EXPECT_DOUBLE_EQ(c.reference[2], double(a[0]) * b[2] + double(a[2]) * b[3]);
  EXPECT_DOUBLE_EQ(c.reference[3], double(a[1]) * b[2] + double(a[3]) * b[3]);
  EXPECT_DOUBLE_EQ(c.magnitude[3], std::fabs(double(a[1]) * b[2]) + std::fabs(double(a[3]) * b[3]));
  // Transposed A: op(A)_ip = A[p + i k].
  GemmCase t = make_gemm_case('T', 'N', 2, 1, 3, 8);
  EXPECT_DOUBLE_EQ(t.reference[1],
                   double(t.a[3]) * t.b[0] + double(t.a[4]) * t.b[1] + double(t.a[5]) * t.b[2]);
  for (float v : c.a) EXPECT_TRUE(v >= -1 && v <= 1);
}

TEST(KernelsGemmCheck, CorrectFloatResultsPass) {
  for (const GemmCase& c : check_cases()) {
    const auto out = float_gemm(c);
    const double r = gemm_error_ratio(c, out.data());
    EXPECT_LE(r, kMaxErrorRatio) << c.transa << c.transb << " " << c.m << "x" << c.n << "x" << c.k;
    EXPECT_GE(r, 0);
  }
}

TEST(KernelsGemmCheck, OnePerturbedElementFails) {
  const GemmCase c = make_gemm_case('N', 'N', 67, 45, 129, 1);
  auto out = float_gemm(c);
  auto nudged = out;
  float& e = nudged[33 + 20 * 67];
  e = std::nextafter(e, 2 * e);  // one unit in the last place: within fp32's error
  EXPECT_LE(gemm_error_ratio(c, nudged.data()), kMaxErrorRatio);
  out[33 + 20 * 67] += 0.01f;  // one element, by about 0.3% of its typical size
  EXPECT_GT(gemm_error_ratio(c, out.data()), kMaxErrorRatio);
}

TEST(KernelsGemmCheck, TransposedResultFails) {
  const GemmCase c = make_gemm_case('N', 'N', 40, 40, 64, 2);
  const auto out = float_gemm(c);
  std::vector<float> transposed(out.size());
  for (int64_t i = 0; i < 40; ++i)
    for (int64_t j = 0; j < 40; ++j) transposed[j + i * 40] = out[i + j * 40];
  EXPECT_GT(gemm_error_ratio(c, transposed.data()), 1000 * kMaxErrorRatio);
}

TEST(KernelsGemmCheck, WrongTranspositionOfAnInputFails) {
  // The product of A^T B computed as if A were not transposed (square, so the shapes agree).
  GemmCase c = make_gemm_case('T', 'N', 30, 20, 30, 3);
  GemmCase as_n = c;
  as_n.transa = 'N';
  EXPECT_GT(gemm_error_ratio(c, float_gemm(as_n).data()), 1000 * kMaxErrorRatio);
}

TEST(KernelsGemmCheck, NanAndInfinityFail) {
  const GemmCase c = make_gemm_case('N', 'T', 50, 31, 77, 3);
  auto out = float_gemm(c);
  out[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isinf(gemm_error_ratio(c, out.data())));
  out = float_gemm(c);
  out.back() = -std::numeric_limits<float>::infinity();
  EXPECT_TRUE(std::isinf(gemm_error_ratio(c, out.data())));
}

TEST(KernelsGemmCheck, CasesCoverEveryTranspositionAndALongK) {
  const auto cases = check_cases();
  bool nn = false, tn = false, nt = false, tt = false, long_k = false;
  for (const auto& c : cases) {
    nn |= c.transa == 'N' && c.transb == 'N';
    tn |= c.transa == 'T' && c.transb == 'N';
    nt |= c.transa == 'N' && c.transb == 'T';
    tt |= c.transa == 'T' && c.transb == 'T';
    long_k |= c.k > 512;
  }
  EXPECT_TRUE(nn && tn && nt && tt && long_k);
}

}  // namespace
}  // namespace compacter::kernels

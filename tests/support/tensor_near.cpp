// EXPECT_TENSOR_NEAR's check and failure message (see tensor_near.h).
#include "support/tensor_near.h"

#include <cmath>
#include <sstream>

namespace compacter::testing {
namespace {

enum class Kind { kFloating, kIntegral, kBool, kOther };

Kind kind_of(const torch::Tensor& t) {
  if (t.is_floating_point()) return Kind::kFloating;
  if (t.scalar_type() == torch::kBool) return Kind::kBool;
  if (c10::isIntegralType(t.scalar_type(), /*includeBool=*/false)) return Kind::kIntegral;
  return Kind::kOther;
}

std::string shape_text(c10::IntArrayRef sizes) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < sizes.size(); ++i) s << (i ? ", " : "") << sizes[i];
  s << "]";
  return s.str();
}

// Values with enough digits to tell float32 neighbours apart.
std::string number(double v) {
  std::ostringstream s;
  s.precision(9);
  s << v;
  return s.str();
}

}  // namespace

std::string multi_index(int64_t flat, c10::IntArrayRef sizes) {
  std::vector<int64_t> index(sizes.size());
  for (int64_t d = static_cast<int64_t>(sizes.size()) - 1; d >= 0; --d) {
    index[d] = sizes[d] > 0 ? flat % sizes[d] : 0;
    flat = sizes[d] > 0 ? flat / sizes[d] : 0;
  }
  return shape_text(index);
}

::testing::AssertionResult tensor_near(const char* actual_text, const char* expected_text,
                                       const char* /*tolerance_text*/, const torch::Tensor& actual,
                                       const torch::Tensor& expected, const Tolerance& tolerance) {
  std::ostringstream head;
  head << actual_text << " vs " << expected_text << " (atol " << number(tolerance.atol) << ", rtol "
       << number(tolerance.rtol) << ")";
  if (!actual.defined() || !expected.defined())
    return ::testing::AssertionFailure()
           << head.str() << ": " << (actual.defined() ? "expected" : "actual")
           << " is an undefined tensor";
  if (actual.sizes() != expected.sizes())
    return ::testing::AssertionFailure()
           << head.str() << ": shapes differ: actual " << shape_text(actual.sizes())
           << ", expected " << shape_text(expected.sizes());
  const Kind ka = kind_of(actual), ke = kind_of(expected);
  if (ka != ke || ka == Kind::kOther)
    return ::testing::AssertionFailure()
           << head.str() << ": dtypes " << actual.scalar_type() << " and " << expected.scalar_type()
           << " cannot be compared (floating with floating, integral "
           << "with integral, bool with bool)";

  const torch::Tensor a = actual.detach().to(torch::kCPU, torch::kDouble).contiguous().view({-1});
  const torch::Tensor e = expected.detach().to(torch::kCPU, torch::kDouble).contiguous().view({-1});
  const double* pa = a.data_ptr<double>();
  const double* pe = e.data_ptr<double>();
  const int64_t n = a.numel();
  int64_t bad = 0, worst = -1;
  double worst_diff = -1.0;
  std::vector<int64_t> shown;
  for (int64_t i = 0; i < n; ++i) {
    // Equal values (infinities included) are near; NaN is near nothing.
    const double diff = pa[i] == pe[i] ? 0.0 : std::abs(pa[i] - pe[i]);
    // The worst entry: the largest |difference| over all elements, a NaN before any number.
    const double rank = std::isnan(diff) ? INFINITY : diff;
    if (rank > worst_diff) {
      worst_diff = rank;
      worst = i;
    }
    if (diff == 0.0 || diff <= tolerance.atol + tolerance.rtol * std::abs(pe[i])) continue;
    ++bad;
    if (static_cast<int>(shown.size()) < kTensorNearPairsShown) shown.push_back(i);
  }
  if (bad == 0) return ::testing::AssertionSuccess();

  std::ostringstream m;
  m << head.str() << ": " << bad << " of " << n << " elements out of tolerance\n"
    << "  shape " << shape_text(actual.sizes()) << ", dtypes " << actual.scalar_type() << " vs "
    << expected.scalar_type() << "\n"
    << "  max |actual - expected| = "
    << number(pa[worst] == pe[worst] ? 0.0 : std::abs(pa[worst] - pe[worst])) << " at "
    << multi_index(worst, actual.sizes()) << ": actual " << number(pa[worst]) << ", expected "
    << number(pe[worst]) << "\n"
    << "  first differing (actual, expected):";
  for (int64_t i : shown)
    m << "\n    " << multi_index(i, actual.sizes()) << ": " << number(pa[i]) << ", "
      << number(pe[i]);
  if (bad > static_cast<int64_t>(shown.size()))
    m << "\n    ... and " << bad - static_cast<int64_t>(shown.size()) << " more";
  return ::testing::AssertionFailure() << m.str();
}

}  // namespace compacter::testing

// The trial GEMMs and their check: see gemm_check.h.
#include "compacter/kernels/gemm_check.h"

#include <cmath>
#include <limits>

namespace compacter::kernels {

GemmCase make_gemm_case(char transa, char transb, int64_t m, int64_t n, int64_t k, uint64_t seed) {
  GemmCase c;
  c.transa = transa;
  c.transb = transb;
  c.m = m;
  c.n = n;
  c.k = k;
  // splitmix64: a fixed, portable sequence.
  uint64_t state = seed;
  auto uniform = [&state] {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return static_cast<float>(static_cast<double>(z >> 40) / static_cast<double>(1ull << 24) * 2.0 -
                              1.0);
  };
  c.a.resize(static_cast<size_t>(m * k));
  c.b.resize(static_cast<size_t>(k * n));
  for (float& v : c.a) v = uniform();
  for (float& v : c.b) v = uniform();
  // op(A)_ip: A is m x k (lda m) when 'N', else k x m (lda k).
  auto opa = [&](int64_t i, int64_t p) {
    return static_cast<double>(transa == 'N' ? c.a[i + p * m] : c.a[p + i * k]);
  };
  auto opb = [&](int64_t p, int64_t j) {
    return static_cast<double>(transb == 'N' ? c.b[p + j * k] : c.b[j + p * n]);
  };
  c.reference.assign(static_cast<size_t>(m * n), 0.0);
  c.magnitude.assign(static_cast<size_t>(m * n), 0.0);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < m; ++i) {
      double sum = 0, mag = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double prod = opa(i, p) * opb(p, j);
        sum += prod;
        mag += std::fabs(prod);
      }
      c.reference[i + j * m] = sum;
      c.magnitude[i + j * m] = mag;
    }
  return c;
}

std::vector<GemmCase> check_cases() {
  return {make_gemm_case('N', 'N', 67, 45, 129, 1), make_gemm_case('T', 'N', 33, 70, 95, 2),
          make_gemm_case('N', 'T', 50, 31, 77, 3), make_gemm_case('T', 'T', 17, 23, 41, 4),
          make_gemm_case('N', 'N', 96, 80, 700, 5)};
}

double gemm_error_ratio(const GemmCase& c, const float* result) {
  const double unit = std::ldexp(1.0, -24);
  double worst = 0;
  for (int64_t i = 0; i < c.m * c.n; ++i) {
    const double r = result[i];
    if (!std::isfinite(r)) return std::numeric_limits<double>::infinity();
    const double allowed = 2.0 * static_cast<double>(c.k) * unit * c.magnitude[i] + 1e-30;
    const double ratio = std::fabs(r - c.reference[i]) / allowed;
    if (!(ratio <= worst)) worst = ratio;
  }
  return worst;
}

}  // namespace compacter::kernels

// The numerical check a trial kernel must pass before it is trusted (issue 16: "some OpenBLAS
// builds are known to compute wrong results with some forced core types"): fp32 GEMMs through
// BLAS's sgemm_ compared with a double-precision reference computed by naive loops, with a
// tolerance from fp32's rounding-error bound (Higham, "Accuracy and Stability of Numerical
// Algorithms", 2nd ed., §3.5: |fl(x.y) - x.y| <= gamma_k |x|.|y|, gamma_k = k u / (1 - k u)).
// Torch-free (the launcher compiles it).
#pragma once
#include <cstdint>
#include <vector>

namespace compacter::kernels {

// C = op(A) op(B), column-major as sgemm_ takes it (lda = transa == 'N' ? m : k, ldb = transb
// == 'N' ? k : n, ldc = m), inputs uniform in [-1, 1] from a fixed seed; in double precision,
// C's reference and its magnitude sum_p |op(A)_ip op(B)_pj| (the scale of fp32's error).
struct GemmCase {
  char transa = 'N', transb = 'N';
  int64_t m = 0, n = 0, k = 0;
  std::vector<float> a, b;
  std::vector<double> reference, magnitude;
  int64_t lda() const { return transa == 'N' ? m : k; }
  int64_t ldb() const { return transb == 'N' ? k : n; }
};
GemmCase make_gemm_case(char transa, char transb, int64_t m, int64_t n, int64_t k, uint64_t seed);

// The cases a trial runs: odd sizes (the kernels' edge code), each transposition, and one with a
// long k (more than one block of the packed panels).
std::vector<GemmCase> check_cases();

// The largest error of `result` (m x n, ldc = m) relative to what fp32 arithmetic allows:
// max over elements of |result - reference| / (2 k 2^-24 magnitude + 1e-30). A correct fp32
// GEMM stays at or below 1 whatever its summation order (twice the bound of k roundings); a
// wrong kernel lands orders of magnitude above. Infinite for a NaN or infinity.
double gemm_error_ratio(const GemmCase& c, const float* result);

// The largest ratio a trial may show and still count as correct.
constexpr double kMaxErrorRatio = 1.0;

}  // namespace compacter::kernels

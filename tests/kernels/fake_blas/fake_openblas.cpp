// A fake OpenBLAS for tests/kernels (probe_test.cpp, launcher_test.cpp): it exports what the
// start-up kernel choice uses (openblas_get_corename, openblas_get_config,
// openblas_set_num_threads, sgemm_), and like OpenBLAS reads OPENBLAS_CORETYPE once, when it
// loads, falling back to Prescott for a name it does not know. Each core type behaves in one
// known way, so that the tests can tell whether the probe and the choice see it:
//   Prescott (the default)  correct, slow: 20 ms per large call
//   Haswell                 correct, fast: 2 ms per large call
//   Zen                     correct, 5 ms per large call
//   SkylakeX                the fastest (1 ms), but one element of every result is wrong
//   Cooperlake              crashes (SIGSEGV) in sgemm_
//   SapphireRapids          hangs in sgemm_
// FAKE_OPENBLAS_WRONG=NAME makes that core type wrong as well.
// A large call (m n k > 2^24, the probe's timed one) only sleeps: its result is never checked.
// Small calls compute C = alpha op(A) op(B) + beta C by naive loops in float.
// It also exports oneDNN's row-major dnnl_sgemm, for the linear layers' comparison
// (run_linear_trial), whose behaviour FAKE_DNNL sets: "fast" (the default; 1 ms per large call,
// correct), "slow" (40 ms), "wrong" (1 ms, one element wrong), "crash" (SIGSEGV).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

const char* const kKnown[] = {"Prescott", "Haswell",    "Zen",
                              "SkylakeX", "Cooperlake", "SapphireRapids"};
const char* g_core = "Prescott";  // constant-initialized: set before load() runs
bool g_wrong = false;

bool is(const char* name);

__attribute__((constructor)) void load() {
  const char* want = std::getenv("OPENBLAS_CORETYPE");
  if (want)
    for (const char* k : kKnown)
      if (strcasecmp(k, want) == 0) g_core = k;
  const char* wrong = std::getenv("FAKE_OPENBLAS_WRONG");
  g_wrong = is("SkylakeX") || (wrong && is(wrong));
}

bool is(const char* name) {
  return std::strcmp(g_core, name) == 0;
}

int sleep_ms() {
  if (is("Haswell")) return 2;
  if (is("Zen")) return 5;
  if (is("SkylakeX")) return 1;
  return 20;
}

}  // namespace

extern "C" {

const char* openblas_get_corename() {
  return g_core;
}

const char* openblas_get_config() {
  static const std::string config = std::string("OpenBLAS 0.0.0-fake DYNAMIC_ARCH ") + g_core;
  return config.c_str();
}

void openblas_set_num_threads(int) {}

void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc, size_t, size_t) {
  if (is("Cooperlake")) raise(SIGSEGV);
  if (is("SapphireRapids"))
    for (;;) pause();
  if (static_cast<double>(*m) * *n * *k > 16777216.0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms()));
    return;
  }
  const bool at = *ta == 'T' || *ta == 't', bt = *tb == 'T' || *tb == 't';
  for (int j = 0; j < *n; ++j)
    for (int i = 0; i < *m; ++i) {
      float sum = 0;
      for (int p = 0; p < *k; ++p)
        sum += (at ? a[p + i * *lda] : a[i + p * *lda]) * (bt ? b[j + p * *ldb] : b[p + j * *ldb]);
      float& out = c[i + j * *ldc];
      out = *alpha * sum + (*beta == 0 ? 0.0f : *beta * out);
    }
  if (g_wrong && *m > 0 && *n > 0) c[(*m / 2) + (*n / 2) * *ldc] += 0.5f;
}

int dnnl_sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
               int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const char* mode_env = std::getenv("FAKE_DNNL");
  const std::string mode = mode_env ? mode_env : "fast";
  if (mode == "crash") raise(SIGSEGV);
  if (static_cast<double>(m) * n * k > 16777216.0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(mode == "slow" ? 40 : 1));
    return 0;
  }
  const bool at = ta == 'T' || ta == 't', bt = tb == 'T' || tb == 't';
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float sum = 0;
      for (int64_t p = 0; p < k; ++p)
        sum += (at ? a[p * lda + i] : a[i * lda + p]) * (bt ? b[j * ldb + p] : b[p * ldb + j]);
      float& out = c[i * ldc + j];
      out = alpha * sum + (beta == 0 ? 0.0f : beta * out);
    }
  if (mode == "wrong" && m > 0 && n > 0) c[(m / 2) * ldc + n / 2] += 0.5f;
  return 0;
}

}  // extern "C"

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
// A large call (m n k > 2^22, the probe's timed one) only sleeps: its result is never checked.
// Small calls compute C = alpha op(A) op(B) + beta C by naive loops in float.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

const char* const kKnown[] = {"Prescott", "Haswell",    "Zen",
                              "SkylakeX", "Cooperlake", "SapphireRapids"};
std::string g_core = "Prescott";

__attribute__((constructor)) void load() {
  const char* want = std::getenv("OPENBLAS_CORETYPE");
  if (!want) return;
  for (const char* k : kKnown)
    if (strcasecmp(k, want) == 0) g_core = k;
}

int sleep_ms() {
  if (g_core == "Haswell") return 2;
  if (g_core == "Zen") return 5;
  if (g_core == "SkylakeX") return 1;
  return 20;
}

}  // namespace

extern "C" {

const char* openblas_get_corename() {
  return g_core.c_str();
}

const char* openblas_get_config() {
  static const std::string config = "OpenBLAS 0.0.0-fake DYNAMIC_ARCH " + g_core;
  return config.c_str();
}

void openblas_set_num_threads(int) {}

void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc, size_t, size_t) {
  if (g_core == "Cooperlake") raise(SIGSEGV);
  if (g_core == "SapphireRapids")
    for (;;) pause();
  if (static_cast<double>(*m) * *n * *k > 4194304.0) {
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
  if (g_core == "SkylakeX" && *m > 0 && *n > 0) c[(*m / 2) + (*n / 2) * *ldc] += 0.5f;
}

}  // extern "C"

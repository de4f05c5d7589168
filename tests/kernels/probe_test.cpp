// Trials in child processes (compacter/kernels/probe.h) against the fake OpenBLAS of
// fake_blas/fake_openblas.cpp, whose core types behave in known ways: correct and slow
// (Prescott, the default), correct and fast (Haswell), wrong (SkylakeX), crashing (Cooperlake),
// hanging (SapphireRapids).
#include "compacter/kernels/probe.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

namespace compacter::kernels {
namespace {

ProbeSettings fake(double timeout = 5) {
  ProbeSettings s;
  s.library = COMPACTER_FAKE_BLAS;
  s.timeout_seconds = timeout;
  s.timed_seconds = 0.01;
  return s;
}

const std::vector<GemmCase>& checks() {
  static const std::vector<GemmCase> c = check_cases();
  return c;
}

TEST(KernelsProbe, TheDefaultCoreIsReportedCheckedAndTimed) {
  const ProbeReport r = run_trial("", checks(), fake());
  EXPECT_TRUE(r.loaded);
  EXPECT_TRUE(r.openblas);
  EXPECT_EQ(r.trial.ran, "Prescott");
  EXPECT_EQ(r.config, "OpenBLAS 0.0.0-fake DYNAMIC_ARCH Prescott");
  EXPECT_EQ(r.trial.failure, "");
  EXPECT_GE(r.trial.error_ratio, 0);
  EXPECT_LE(r.trial.error_ratio, kMaxErrorRatio);
  // 2 * 512^3 flops in at least 20 ms (the fake's sleep): at most ~13.4 GFLOP/s.
  EXPECT_GT(r.trial.gflops, 0);
  EXPECT_LT(r.trial.gflops, 13.5);
  EXPECT_FALSE(r.files.empty());
  EXPECT_EQ(trial_failure(r.trial), "");
}

TEST(KernelsProbe, AFasterCorrectCore) {
  const ProbeReport r = run_trial("haswell", checks(), fake());
  EXPECT_EQ(r.trial.ran, "Haswell");
  EXPECT_EQ(trial_failure(r.trial), "");
  EXPECT_GT(r.trial.gflops, 13.5);  // 2 ms per call, less the machine's noise
}

TEST(KernelsProbe, AWrongCoreFailsItsCheck) {
  const ProbeReport r = run_trial("SkylakeX", checks(), fake());
  EXPECT_EQ(r.trial.ran, "SkylakeX");
  EXPECT_EQ(r.trial.failure, "");
  EXPECT_GT(r.trial.error_ratio, kMaxErrorRatio);
  EXPECT_NE(trial_failure(r.trial).find("wrong results"), std::string::npos);
}

TEST(KernelsProbe, ACrashIsAFailedTrial) {
  const ProbeReport r = run_trial("Cooperlake", checks(), fake());
  EXPECT_EQ(r.trial.ran, "Cooperlake");  // said before it crashed
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer catches the SIGSEGV, reports it and aborts (abort_on_error=1).
  EXPECT_TRUE(r.trial.failure.find("crashed (signal 11") != std::string::npos ||
              r.trial.failure.find("crashed (signal 6") != std::string::npos)
      << r.trial.failure;
#else
  EXPECT_NE(r.trial.failure.find("crashed (signal 11"), std::string::npos) << r.trial.failure;
#endif
}

TEST(KernelsProbe, AHangIsKilledAfterTheTimeout) {
  const auto start = std::chrono::steady_clock::now();
  const ProbeReport r = run_trial("SapphireRapids", checks(), fake(0.3));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(r.trial.failure.find("did not finish within 0.3 s"), std::string::npos)
      << r.trial.failure;
  EXPECT_LT(seconds, 3.0);
}

TEST(KernelsProbe, AnUnknownNameRunsTheDefaultAndIsRejected) {
  const ProbeReport r = run_trial("Zen5", checks(), fake());
  EXPECT_EQ(r.trial.ran, "Prescott");
  EXPECT_EQ(r.trial.error_ratio, -1);  // not even checked
  EXPECT_NE(trial_failure(r.trial).find("does not know Zen5"), std::string::npos);
}

TEST(KernelsProbe, AMissingLibraryOrOneWithoutOpenBlasFails) {
  ProbeSettings s = fake();
  s.library = "/nonexistent/libblas.so.3";
  ProbeReport r = run_trial("", checks(), s);
  EXPECT_FALSE(r.loaded);
  EXPECT_NE(r.trial.failure.find("cannot load /nonexistent/libblas.so.3"), std::string::npos);
  s.library = "libc.so.6";
  r = run_trial("", checks(), s);
  EXPECT_TRUE(r.loaded);
  EXPECT_FALSE(r.openblas);
  EXPECT_NE(r.trial.failure.find("not OpenBLAS"), std::string::npos);
}

// The linear layers' comparison (run_linear_trial) against the fake's dnnl_sgemm, whose
// behaviour FAKE_DNNL sets (fake_blas/fake_openblas.cpp).
LinearReport linear_with(const char* fake_dnnl, const std::string& core) {
  ProbeSettings s = fake();
  s.onednn_library = COMPACTER_FAKE_BLAS;
  setenv("FAKE_DNNL", fake_dnnl, 1);  // the child inherits it
  const LinearReport r = run_linear_trial(core, 2, checks(), s);
  unsetenv("FAKE_DNNL");
  return r;
}

TEST(KernelsLinearTrial, BothKernelsAreCheckedAndTimedOnTheCoreAsked) {
  // Haswell: 2 ms per product; the fast oneDNN 1 ms.
  LinearReport r = linear_with("fast", "Haswell");
  EXPECT_EQ(r.trial.failure, "");
  EXPECT_EQ(r.trial.threads, 2);
  EXPECT_GE(r.trial.onednn_error_ratio, 0);
  EXPECT_LE(r.trial.onednn_error_ratio, kMaxErrorRatio);
  EXPECT_GT(r.trial.blas_gflops, 0);
  EXPECT_GT(r.trial.onednn_gflops, 1.3 * r.trial.blas_gflops);
  EXPECT_EQ(r.files, std::vector<std::string>{COMPACTER_FAKE_BLAS});
  EXPECT_EQ(choose_linear(r.trial).kernel, "oneDNN");
  // The default, Prescott: 20 ms per product; the slow oneDNN 40 ms.
  r = linear_with("slow", "");
  EXPECT_EQ(r.trial.failure, "");
  EXPECT_GT(r.trial.blas_gflops, 1.3 * r.trial.onednn_gflops);
  EXPECT_EQ(choose_linear(r.trial).kernel, "OpenBLAS");
}

TEST(KernelsLinearTrial, AWrongOneDnnFailsItsCheck) {
  const LinearReport r = linear_with("wrong", "Haswell");
  EXPECT_EQ(r.trial.failure, "");
  EXPECT_GT(r.trial.onednn_error_ratio, kMaxErrorRatio);
  const LinearChoice c = choose_linear(r.trial);
  EXPECT_EQ(c.kernel, "OpenBLAS");  // although it is the faster
  EXPECT_NE(c.summary.find("failed its check"), std::string::npos) << c.summary;
}

TEST(KernelsLinearTrial, ACrashOrAMissingLibraryKeepsOpenBlas) {
  LinearReport r = linear_with("crash", "Haswell");
  EXPECT_NE(r.trial.failure.find("crashed (signal"), std::string::npos) << r.trial.failure;
  EXPECT_EQ(choose_linear(r.trial).kernel, "OpenBLAS");
  ProbeSettings s = fake();
  s.onednn_library = "/nonexistent/libdnnl.so.2";
  r = run_linear_trial("", 1, checks(), s);
  EXPECT_NE(r.trial.failure.find("cannot load /nonexistent/libdnnl.so.2"), std::string::npos)
      << r.trial.failure;
  s.onednn_library = "libc.so.6";
  r = run_linear_trial("", 1, checks(), s);
  EXPECT_EQ(r.trial.failure, "no dnnl_sgemm in libc.so.6");
}

// The real libraries libtorch links (Debian: libblas.so.3 -> OpenBLAS, libdnnl.so.2): only that
// both compute correctly and get timed; which is faster depends on the machine.
TEST(KernelsLinearTrial, TheRealLibraries) {
  ProbeSettings s;
  s.linear_rows = 256;
  s.linear_rounds = 1;
  const LinearReport r = run_linear_trial("", 1, checks(), s);
  if (r.trial.failure.rfind("cannot load", 0) == 0 || r.trial.failure.rfind("no ", 0) == 0)
    GTEST_SKIP() << r.trial.failure;
  EXPECT_EQ(r.trial.failure, "");
  EXPECT_GE(r.trial.onednn_error_ratio, 0);
  EXPECT_LE(r.trial.onednn_error_ratio, kMaxErrorRatio);
  EXPECT_GT(r.trial.blas_gflops, 0);
  EXPECT_GT(r.trial.onednn_gflops, 0);
}

}  // namespace
}  // namespace compacter::kernels

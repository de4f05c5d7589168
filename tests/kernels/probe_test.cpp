// Trials in child processes (compacter/kernels/probe.h) against the fake OpenBLAS of
// fake_blas/fake_openblas.cpp, whose core types behave in known ways: correct and slow
// (Prescott, the default), correct and fast (Haswell), wrong (SkylakeX), crashing (Cooperlake),
// hanging (SapphireRapids).
#include "compacter/kernels/probe.h"

#include <gtest/gtest.h>

#include <chrono>

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

}  // namespace
}  // namespace compacter::kernels

// The kernels report (compacter/kernels/report.h) from made-up library answers and verdicts:
// the one line train prints, and the JSON of bench and results.json.
#include "compacter/kernels/report.h"

#include <gtest/gtest.h>

namespace compacter::kernels {
namespace {

Verdict chosen() {
  Verdict v;
  v.mode = "auto";
  v.source = "cached";
  v.blas = "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY USE_OPENMP Prescott";
  v.default_core = "Prescott";
  v.core = "SkylakeX";
  v.summary = "chose SkylakeX (250.0 GFLOP/s) over OpenBLAS's default Prescott (35.0 GFLOP/s)";
  v.trials = {{"", "Prescott", "", 0.1, 35}, {"SkylakeX", "SkylakeX", "", 0.1, 250}};
  return v;
}

const std::string kConfig =
    "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY USE_OPENMP SkylakeX";

TEST(KernelsReport, ChosenAtStartUp) {
  const KernelsReport r = make_report("SkylakeX", kConfig, chosen(), "SkylakeX", 2, "Xeon");
  EXPECT_EQ(kernels_line(r),
            "kernels: OpenBLAS 0.3.21 SkylakeX (chosen at start-up; default Prescott), 2 threads; "
            "fp32 linear layers: OpenBLAS; fp32 GEMM 250.0 GFLOP/s on one thread at start-up");
  const nlohmann::json j = kernels_json(r);
  EXPECT_EQ(j["core"], "SkylakeX");
  EXPECT_EQ(j["default_core"], "Prescott");
  EXPECT_EQ(j["probe_gflops_one_thread"], 250.0);
  EXPECT_TRUE(j["fp32_gflops"].is_null());
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["cpu_model"], "Xeon");
}

TEST(KernelsReport, MeasuredRatesAreShown) {
  KernelsReport r = make_report("SkylakeX", kConfig, chosen(), "SkylakeX", 2, "Xeon");
  r.fp32_gflops = 412.25;
  r.bf16_gflops = 150.0;
  EXPECT_EQ(kernels_line(r),
            "kernels: OpenBLAS 0.3.21 SkylakeX (chosen at start-up; default Prescott), 2 threads; "
            "fp32 linear layers: OpenBLAS; fp32 GEMM 412.2 GFLOP/s; bf16 GEMM 150.0 GFLOP/s");
  EXPECT_EQ(kernels_json(r)["bf16_gflops"], 150.0);
}

// Where the bf16 GEMM widens to fp32 (no bf16 instructions), the line says fp32 is faster.
TEST(KernelsReport, AWidenedBf16GemmIsNamed) {
  KernelsReport r = make_report("Zen", kConfig, std::nullopt, "", 2, "AMD EPYC");
  r.bf16_linear = "oneDNN";
  r.bf16_linear_how = std::string("the default; ") + kBf16Widened;
  EXPECT_NE(kernels_line(r).find("; bf16 linear layers: oneDNN (widened to fp32: this CPU has no "
                                 "bf16 GEMM, fp32 runs faster)"),
            std::string::npos)
      << kernels_line(r);
  r.bf16_linear_how = "the default; GEMM API";
  EXPECT_EQ(kernels_line(r).find("widened"), std::string::npos) << kernels_line(r);
}

TEST(KernelsReport, TheOtherWaysACoreComesAbout) {
  Verdict kept = chosen();
  kept.core = "";
  kept.default_core = "Cooperlake";
  kept.trials = {{"", "Cooperlake", "", 0.1, 200}};
  EXPECT_EQ(
      kernels_line(make_report("Cooperlake", kConfig, kept, "", 1, "")),
      "kernels: OpenBLAS 0.3.21 Cooperlake (OpenBLAS's default, checked at start-up), 1 "
      "thread; fp32 linear layers: OpenBLAS; fp32 GEMM 200.0 GFLOP/s on one thread at start-up");
  Verdict user;
  user.mode = "user";
  EXPECT_EQ(kernels_line(make_report("Haswell", kConfig, user, "Haswell", 2, "")),
            "kernels: OpenBLAS 0.3.21 Haswell (set by OPENBLAS_CORETYPE), 2 threads; fp32 linear "
            "layers: OpenBLAS");
  Verdict off;
  off.mode = "default";
  off.reason = "--kernels default";
  EXPECT_EQ(kernels_line(make_report("Prescott", kConfig, off, "", 2, "")),
            "kernels: OpenBLAS 0.3.21 Prescott (OpenBLAS's default; start-up choice switched off "
            "by --kernels default), 2 threads; fp32 linear layers: OpenBLAS");
  EXPECT_EQ(kernels_line(make_report("Prescott", kConfig, std::nullopt, "", 2, "")),
            "kernels: OpenBLAS 0.3.21 Prescott (OpenBLAS's default; not checked (started without "
            "the launcher)), 2 threads; fp32 linear layers: OpenBLAS");
  EXPECT_EQ(kernels_line(make_report("", "", std::nullopt, "", 2, "")),
            "kernels: BLAS (not OpenBLAS) (OpenBLAS's default; not checked (started without the "
            "launcher)), 2 threads; fp32 linear layers: OpenBLAS");
}

TEST(KernelsReport, TheLinearLayersKernelComesFromTheVerdict) {
  Verdict v = chosen();
  v.fp32_linear = "oneDNN";
  v.linear_summary = "oneDNN (300.0 GFLOP/s, OpenBLAS 200.0 GFLOP/s on 2 threads)";
  const KernelsReport r = make_report("SkylakeX", kConfig, v, "SkylakeX", 2, "Xeon");
  EXPECT_EQ(kernels_line(r),
            "kernels: OpenBLAS 0.3.21 SkylakeX (chosen at start-up; default Prescott), 2 threads; "
            "fp32 linear layers: oneDNN; fp32 GEMM 250.0 GFLOP/s on one thread at start-up");
  const nlohmann::json j = kernels_json(r);
  EXPECT_EQ(j["fp32_linear"], "oneDNN");
  EXPECT_EQ(j["fp32_linear_how"],
            "chosen at start-up: oneDNN (300.0 GFLOP/s, OpenBLAS 200.0 GFLOP/s on 2 threads)");
  // A verdict that compared nothing (switched off, or from before the comparison existed).
  EXPECT_EQ(kernels_json(make_report("SkylakeX", kConfig, chosen(), "", 2, ""))["fp32_linear"],
            "OpenBLAS");
}

}  // namespace
}  // namespace compacter::kernels

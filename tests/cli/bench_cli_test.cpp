// `compacter bench` (tools/compacter/cmd_bench.cpp), run as the built program on a tiny random
// T5: one child process per method, the Table 3 columns in JSON, and its errors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "support/test_support.h"

namespace compacter {
namespace {

using ::compacter::testing::run_compacter;
using ::compacter::testing::TempDir;
using nlohmann::json;

TEST(BenchCli, ReportsEveryMethodInJson) {
  TempDir dir;
  // --reduction-factor 4: a bottleneck of 8, which Compacter's n = 4 divides.
  const auto r = run_compacter("bench --model-config '" + testing::write_tiny_t5_config(dir, 128) +
                               "' --methods full,compacter++,bitfit --batch-size 2 --source-len 8 "
                               "--target-len 3 --max-steps 2 --reduction-factor 4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = json::parse(r.out);
  ASSERT_EQ(doc["methods"].size(), 3u);
  for (const json& m : doc["methods"]) {
    SCOPED_TRACE(m.dump());
    EXPECT_GT(m["seconds_per_step"].get<double>(), 0.0);
    EXPECT_GT(m["examples_per_second"].get<double>(), 0.0);
    EXPECT_GT(m["peak_memory_bytes"].get<int64_t>(), 0);
    EXPECT_GT(m["gflops_per_second"].get<double>(), 0.0);
    EXPECT_GT(m["percent_of_gemm"].get<double>(), 0.0);
    EXPECT_EQ(m["step_seconds"].size(), 2u);
  }
  const json& full = doc["methods"][0];
  const json& compacter = doc["methods"][1];
  EXPECT_EQ(full["method"], "full");
  EXPECT_EQ(compacter["method"], "compacter++");
  EXPECT_EQ(doc["methods"][2]["method"], "bitfit");
  EXPECT_DOUBLE_EQ(full["time_diff_percent"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(full["memory_diff_percent"].get<double>(), 0.0);
  EXPECT_TRUE(compacter["time_diff_percent"].is_number());
  EXPECT_GT(full["trainable_parameters"].get<int64_t>(),
            compacter["trainable_parameters"].get<int64_t>());
  EXPECT_EQ(full["flop_multiplier"], 3);
  EXPECT_EQ(compacter["flop_multiplier"], 2);
  EXPECT_GT(doc["gemm"]["fp32"]["representative"]["best_gflops"].get<double>(), 0.0);
  EXPECT_GT(doc["gemm"]["fp32"]["square"]["best_gflops"].get<double>(), 0.0);
  EXPECT_GE(doc["machine"]["cores"].get<int>(), 1);
  EXPECT_FALSE(doc["machine"]["libtorch"].get<std::string>().empty());
  // The kernels (README "Kernels at start-up"), with the rates measured here.
  const json& kernels = doc["machine"]["kernels"];
  EXPECT_EQ(kernels["fp32_gflops"], doc["gemm"]["fp32"]["best_gflops"]) << kernels.dump();
  EXPECT_GT(kernels["bf16_gflops"].get<double>(), 0.0) << kernels.dump();
  EXPECT_EQ(kernels["threads"], doc["machine"]["cores"]);
  EXPECT_EQ(kernels["line"].get<std::string>().rfind("kernels: ", 0), 0u) << kernels.dump();
  EXPECT_FALSE(kernels["how"].get<std::string>().empty());
  EXPECT_EQ(doc["settings"]["batch"], 2);
  // Progress goes to stderr.
  EXPECT_NE(r.err.find("compacter++: step 2/2"), std::string::npos) << r.err;
}

// The launcher (tools/launcher) sets libgomp's spin count before the program loads, unless the
// user chose a wait policy or spin count; the bench records the environment it ran in.
TEST(BenchCli, TheLauncherSetsTheSpinCountUnlessTheUserDid) {
  TempDir dir;
  const std::string args = "bench --model-config '" + testing::write_tiny_t5_config(dir, 128) +
                           "' --methods bitfit --batch-size 1 --source-len 4 --target-len 2 "
                           "--max-steps 1 --warmup 0 --json";
  auto r = run_compacter(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["machine"]["environment"]["GOMP_SPINCOUNT"], "10000");
  const std::string env = "env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=PASSIVE ";
  const std::string cmd = env + "'" + std::string(COMPACTER_BINARY) + "' " + args;
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  ASSERT_EQ(pclose(pipe), 0);
  const json environment = json::parse(out)["machine"]["environment"];
  EXPECT_TRUE(environment["GOMP_SPINCOUNT"].is_null()) << environment.dump();
  EXPECT_EQ(environment["OMP_WAIT_POLICY"], "PASSIVE");
}

// COMPACTER_FP32_LINEAR overrides the launcher's choice of the fp32 linear layers' kernel
// (kernels/choice.h); the report says which kernel ran and why.
TEST(BenchCli, TheLinearLayersKernelCanBeForced) {
  TempDir dir;
  const std::string args =
      "bench --model-config '" + testing::write_tiny_t5_config(dir, 128) +
      "' --methods compacter++ --reduction-factor 4 --batch-size 1 --source-len 4 "
      "--target-len 2 --max-steps 1 --warmup 0 --json";
  setenv("COMPACTER_FP32_LINEAR", "fast", 1);
  auto r = run_compacter(args);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("COMPACTER_FP32_LINEAR=fast: expected openblas or onednn"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(r.out.empty());
  for (const std::string kernel : {"openblas", "onednn"}) {
    setenv("COMPACTER_FP32_LINEAR", kernel.c_str(), 1);
    r = run_compacter(args);
    if (kernel == "onednn" && r.err.find("is not in this process") != std::string::npos) {
      unsetenv("COMPACTER_FP32_LINEAR");
      GTEST_SKIP() << r.err;
    }
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json kernels = json::parse(r.out)["machine"]["kernels"];
    EXPECT_EQ(kernels["fp32_linear"], kernel == "onednn" ? "oneDNN" : "OpenBLAS");
    EXPECT_EQ(kernels["fp32_linear_how"], "set by COMPACTER_FP32_LINEAR");
    EXPECT_NE(kernels["line"].get<std::string>().find(kernel == "onednn"
                                                          ? "fp32 linear layers: oneDNN"
                                                          : "fp32 linear layers: OpenBLAS"),
              std::string::npos);
  }
  unsetenv("COMPACTER_FP32_LINEAR");
}

// COMPACTER_BF16_LINEAR picks the linear layers' product under bf16 autocast; the report says
// which and why.
TEST(BenchCli, TheBf16LinearLayersProductCanBeForced) {
  TempDir dir;
  const std::string args =
      "bench --model-config '" + testing::write_tiny_t5_config(dir, 128) +
      "' --methods compacter++ --reduction-factor 4 --batch-size 1 --source-len 4 "
      "--target-len 2 --max-steps 1 --warmup 0 --dtype autocast-bf16 --json";
  setenv("COMPACTER_BF16_LINEAR", "fast", 1);
  auto r = run_compacter(args);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("COMPACTER_BF16_LINEAR=fast: expected onednn or libtorch"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(r.out.empty());
  for (const std::string kernel : {"libtorch", "onednn"}) {
    setenv("COMPACTER_BF16_LINEAR", kernel.c_str(), 1);
    r = run_compacter(args);
    if (kernel == "onednn" && r.err.find("is not in this process") != std::string::npos) {
      unsetenv("COMPACTER_BF16_LINEAR");
      GTEST_SKIP() << r.err;
    }
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json kernels = json::parse(r.out)["machine"]["kernels"];
    const std::string name = kernel == "onednn" ? "oneDNN" : "libtorch";
    EXPECT_EQ(kernels["bf16_linear"], name);
    // "set by COMPACTER_BF16_LINEAR", then for oneDNN which of its products the layers take
    EXPECT_EQ(
        kernels["bf16_linear_how"].get<std::string>().rfind("set by COMPACTER_BF16_LINEAR", 0), 0u)
        << kernels["bf16_linear_how"];
    EXPECT_NE(kernels["line"].get<std::string>().find("; bf16 linear layers: " + name),
              std::string::npos);
  }
  unsetenv("COMPACTER_BF16_LINEAR");
}

TEST(BenchCli, UnknownMethodIsAnErrorBeforeAnyRun) {
  const auto r = run_compacter("bench --methods full,nosuch --max-steps 1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown method \"nosuch\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("compacter++"), std::string::npos) << r.err;  // the known names
  EXPECT_EQ(r.err.find("[bench]"), std::string::npos) << r.err;      // nothing ran
  EXPECT_TRUE(r.out.empty());
}

TEST(BenchCli, FailingMethodNamesItAndItsError) {
  TempDir dir;
  // PHM's default n = 12 does not divide d_model 32: the child fails, the parent says which.
  const auto r = run_compacter("bench --model-config '" + testing::write_tiny_t5_config(dir, 128) +
                               "' --methods phm --batch-size 1 --source-len 4 --target-len 2 "
                               "--max-steps 1 --warmup 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("method phm failed (exit code 1)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1 of 1 methods failed: phm"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace compacter

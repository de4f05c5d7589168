// The launcher end to end (tools/launcher, `build/compacter`) with the fake OpenBLAS
// (fake_blas/fake_openblas.cpp, through COMPACTER_BLAS_LIBRARY), a described CPU
// (COMPACTER_KERNELS_TEST_CPU: an AVX-512 Xeon, so nothing depends on the CPU the tests run on),
// a fresh cache folder (XDG_CACHE_HOME), and instead of compacter-core a script that prints the
// environment the launcher hands on (COMPACTER_CORE_PROGRAM). The fake's default core (Prescott)
// is slow; of the candidates, Cooperlake crashes, SkylakeX is the fastest but wrong, Haswell is
// correct and fast: the launcher must choose Haswell. The fake's dnnl_sgemm stands for oneDNN
// (COMPACTER_ONEDNN_LIBRARY).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>

#include "compacter/core/subprocess.h"
#include "compacter/kernels/choice.h"
#include "support/test_support.h"

namespace compacter::kernels {
namespace {

struct Launch {
  ChildResult child;
  std::map<std::string, std::string> env;  // what the launcher handed on
  double seconds = 0;
};

Launch launch(const std::string& cache, const std::vector<std::string>& settings,
              const std::vector<std::string>& args = {}) {
  std::vector<std::string> a = {"-u",
                                "OPENBLAS_CORETYPE",
                                "-u",
                                "COMPACTER_KERNELS",
                                "-u",
                                "COMPACTER_LAUNCHER_KEEP_ENV",
                                "-u",
                                kStartupVariable,
                                "XDG_CACHE_HOME=" + cache,
                                std::string("COMPACTER_BLAS_LIBRARY=") + COMPACTER_FAKE_BLAS,
                                std::string("COMPACTER_ONEDNN_LIBRARY=") + COMPACTER_FAKE_BLAS,
                                "COMPACTER_KERNELS_TEST_CPU=GenuineIntel;6;207;sse3 avx fma avx2 "
                                "avx512f avx512cd avx512bw avx512dq avx512vl avx512_bf16",
                                std::string("COMPACTER_CORE_PROGRAM=") + COMPACTER_PRINT_ENV};
  a.insert(a.end(), settings.begin(), settings.end());
  a.push_back(COMPACTER_BINARY);
  a.insert(a.end(), args.begin(), args.end());
  Launch l;
  const auto start = std::chrono::steady_clock::now();
  l.child = run_child("/usr/bin/env", a);
  l.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const std::string& line : testing::lines_of(l.child.out)) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) l.env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return l;
}

Verdict verdict_of(const Launch& l) {
  return verdict_from_json(nlohmann::json::parse(l.env.at(kStartupVariable)));
}

TEST(KernelsLauncher, ChoosesTheFastestCorrectCoreAndCachesIt) {
  testing::TempDir dir;
  Launch first = launch(dir.path(), {});
  ASSERT_TRUE(first.child.succeeded()) << first.child.err_tail;
  EXPECT_EQ(first.env["OPENBLAS_CORETYPE"], "Haswell");
  EXPECT_EQ(first.child.err_tail, "");  // nothing said when a correct core was found
  const Verdict v = verdict_of(first);
  EXPECT_EQ(v.mode, "auto");
  EXPECT_EQ(v.source, "probed");
  EXPECT_EQ(v.default_core, "Prescott");
  EXPECT_EQ(v.core, "Haswell");
  std::map<std::string, std::string> failures;
  for (const Trial& t : v.trials) failures[t.requested] = t.failure;
  EXPECT_NE(failures["SkylakeX"].find("wrong results"), std::string::npos);
  EXPECT_NE(failures["Cooperlake"].find("crashed"), std::string::npos);
  EXPECT_EQ(failures["Haswell"], "");

  Launch second = launch(dir.path(), {});
  EXPECT_EQ(second.env["OPENBLAS_CORETYPE"], "Haswell");
  EXPECT_EQ(verdict_of(second).source, "cached");
}

TEST(KernelsLauncher, NeverOverridesTheUsersCore) {
  testing::TempDir dir;
  Launch l = launch(dir.path(), {"OPENBLAS_CORETYPE=SkylakeX"});
  EXPECT_EQ(l.env["OPENBLAS_CORETYPE"], "SkylakeX");
  const Verdict v = verdict_of(l);
  EXPECT_EQ(v.mode, "user");
  EXPECT_TRUE(v.trials.empty());  // no core trial
  // Only the linear layers' kernel is compared with the user's core: the fake's SkylakeX and
  // dnnl_sgemm both take 1 ms per product, a tie, which goes to oneDNN (choice.h).
  ASSERT_TRUE(v.linear.has_value());
  EXPECT_EQ(v.linear->failure, "");
  EXPECT_EQ(v.fp32_linear, "oneDNN");
  EXPECT_EQ(verdict_of(launch(dir.path(), {"OPENBLAS_CORETYPE=SkylakeX"})).source, "cached");
}

TEST(KernelsLauncher, SwitchedOffByTheOptionOrTheVariable) {
  testing::TempDir dir;
  for (const auto& [settings, args] :
       std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>>{
           {{}, {"--kernels", "default", "bench"}},
           {{}, {"--kernels=default"}},
           {{"COMPACTER_KERNELS=default"}, {"bench"}}}) {
    Launch l = launch(dir.path(), settings, args);
    EXPECT_EQ(l.env.count("OPENBLAS_CORETYPE"), 0u);
    EXPECT_EQ(verdict_of(l).mode, "default");
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/compacter/kernels.json"));
}

TEST(KernelsLauncher, WarnsOnceWhenNoCandidateIsCorrect) {
  testing::TempDir dir;
  // Haswell made wrong too: Cooperlake crashes, SkylakeX and Haswell compute wrong results.
  Launch first = launch(dir.path(), {"FAKE_OPENBLAS_WRONG=Haswell"});
  EXPECT_EQ(first.env.count("OPENBLAS_CORETYPE"), 0u);
  EXPECT_NE(first.child.err_tail.find("no faster kernel type computed correct results"),
            std::string::npos)
      << first.child.err_tail;
  EXPECT_EQ(testing::lines_of(first.child.err_tail).size(), 1u);
  Launch second = launch(dir.path(), {"FAKE_OPENBLAS_WRONG=Haswell"});
  EXPECT_EQ(second.child.err_tail, "");  // once
  EXPECT_EQ(verdict_of(second).source, "cached");
  EXPECT_NE(verdict_of(second).warning, "");
}

}  // namespace
}  // namespace compacter::kernels

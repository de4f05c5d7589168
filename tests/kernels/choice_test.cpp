// Judging trials and choosing among them, the verdict's JSON, the mode values, and the cache
// (compacter/kernels/choice.h), on made-up trials.
#include "compacter/kernels/choice.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "support/test_support.h"

namespace compacter::kernels {
namespace {

Trial ok(const std::string& core, double gflops, bool is_default = false) {
  return {is_default ? "" : core, core, "", 0.1, gflops};
}

TEST(KernelsChoice, JudgeRejectsWhatTheReportShows) {
  EXPECT_EQ(trial_failure(ok("Haswell", 100)), "");
  Trial wrong = ok("SkylakeX", 300);
  wrong.error_ratio = 5e4;
  EXPECT_NE(trial_failure(wrong).find("wrong results"), std::string::npos);
  Trial nan = ok("SkylakeX", 300);
  nan.error_ratio = INFINITY;
  EXPECT_NE(trial_failure(nan).find("NaN"), std::string::npos);
  Trial other = ok("Cooperlake", 200);
  other.ran = "Haswell";  // this OpenBLAS does not know the name asked for
  EXPECT_NE(trial_failure(other).find("does not know Cooperlake"), std::string::npos);
  Trial unchecked = ok("Zen", 100);
  unchecked.error_ratio = -1;
  EXPECT_EQ(trial_failure(unchecked), "no check ran");
  Trial crashed = ok("Zen", 100);
  crashed.failure = "crashed (signal 4, Illegal instruction)";
  EXPECT_EQ(trial_failure(crashed), crashed.failure);
  Trial same_case = ok("skylakex", 100);
  same_case.ran = "SkylakeX";
  EXPECT_EQ(trial_failure(same_case), "");
}

TEST(KernelsChoice, TheFastestCorrectCandidateWins) {
  Trial wrong = ok("SkylakeX", 290);
  wrong.error_ratio = 1e5;
  const Choice c =
      choose(ok("Prescott", 35, true), {ok("Cooperlake", 220), wrong, ok("Haswell", 130)});
  EXPECT_EQ(c.core, "Cooperlake");
  EXPECT_EQ(c.warning, "");
  EXPECT_NE(c.summary.find("chose Cooperlake"), std::string::npos);
  EXPECT_NE(c.summary.find("SkylakeX: wrong results"), std::string::npos);
}

TEST(KernelsChoice, ACandidateMustBeatTheDefaultClearly) {
  EXPECT_EQ(choose(ok("Haswell", 100, true), {ok("SkylakeX", 105)}).core, "");
  EXPECT_EQ(choose(ok("Haswell", 100, true), {ok("SkylakeX", 120)}).core, "SkylakeX");
  EXPECT_EQ(choose(ok("Haswell", 100, true), {ok("SkylakeX", 105)}, 1.0).core, "SkylakeX");
  // Ties go to the earlier (higher-tier) candidate.
  EXPECT_EQ(choose(ok("Prescott", 30, true), {ok("Cooperlake", 200), ok("SkylakeX", 200)}).core,
            "Cooperlake");
}

TEST(KernelsChoice, NoCorrectCandidateKeepsTheDefaultAndWarns) {
  Trial crashed = ok("Cooperlake", 0);
  crashed.failure = "crashed (signal 11, Segmentation fault)";
  Trial wrong = ok("SkylakeX", 290);
  wrong.error_ratio = INFINITY;
  const Choice c = choose(ok("Prescott", 35, true), {crashed, wrong});
  EXPECT_EQ(c.core, "");
  EXPECT_NE(c.warning.find("keeping the default"), std::string::npos);
  EXPECT_NE(c.warning.find("Cooperlake: crashed"), std::string::npos);
  EXPECT_NE(c.warning.find("SkylakeX: wrong results"), std::string::npos);
}

TEST(KernelsChoice, AWrongDefaultLosesToAnyCorrectCandidate) {
  Trial def = ok("Prescott", 35, true);
  def.error_ratio = 1e6;
  EXPECT_EQ(choose(def, {ok("Haswell", 20)}).core, "Haswell");
}

TEST(KernelsChoice, VerdictRoundTripsThroughJson) {
  Verdict v;
  v.mode = "auto";
  v.source = "probed";
  v.library = "libblas.so.3";
  v.blas = "OpenBLAS 0.3.21 DYNAMIC_ARCH";
  v.default_core = "Prescott";
  v.core = "SkylakeX";
  v.summary = "chose SkylakeX";
  Trial nan = ok("Cooperlake", 1);
  nan.error_ratio = INFINITY;
  v.trials = {ok("Prescott", 35, true), nan, ok("SkylakeX", 250)};
  const Verdict back = verdict_from_json(nlohmann::json::parse(verdict_to_json(v).dump()));
  EXPECT_EQ(verdict_to_json(back), verdict_to_json(v));
  EXPECT_TRUE(std::isinf(back.trials[1].error_ratio));
  EXPECT_FALSE(back.linear.has_value());
  v.fp32_linear = "OpenBLAS";
  v.linear_summary = "OpenBLAS (oneDNN's sgemm failed its check: error inf x fp32's bound)";
  v.linear = LinearTrial{2, "", INFINITY, 200, 300};
  const Verdict linear = verdict_from_json(nlohmann::json::parse(verdict_to_json(v).dump()));
  EXPECT_EQ(verdict_to_json(linear), verdict_to_json(v));
  EXPECT_TRUE(std::isinf(linear.linear->onednn_error_ratio));
  EXPECT_THROW(verdict_from_json(nlohmann::json{{"mode", "auto"}}), nlohmann::json::exception);
}

TEST(KernelsChoice, TheLinearLayersKernel) {
  // oneDNN when correct, unless OpenBLAS is kLinearMinGain (15%) faster: ties go to oneDNN.
  const LinearChoice faster = choose_linear({2, "", 0.5, 200, 211});
  EXPECT_EQ(faster.kernel, "oneDNN");
  EXPECT_EQ(faster.summary, "oneDNN (oneDNN 211.0 GFLOP/s, OpenBLAS 200.0 GFLOP/s on 2 threads)");
  EXPECT_EQ(choose_linear({2, "", 0.5, 209, 200}).kernel, "oneDNN");  // a tie
  EXPECT_EQ(choose_linear({2, "", 0.5, 229, 200}).kernel, "oneDNN");  // 1.145x: still a tie
  EXPECT_EQ(choose_linear({2, "", 0.5, 200, 200}).kernel, "oneDNN");
  EXPECT_EQ(choose_linear({1, "", 0.5, 231, 200}).summary,
            "OpenBLAS (oneDNN 200.0 GFLOP/s, OpenBLAS 231.0 GFLOP/s on 1 thread; OpenBLAS is kept "
            "when 1.15x faster than oneDNN)");
  EXPECT_EQ(choose_linear({2, "", 1.5, 200, 400}).kernel, "OpenBLAS");
  EXPECT_EQ(choose_linear({2, "", -1, 200, 400}).kernel, "OpenBLAS");  // unchecked
  EXPECT_EQ(choose_linear({2, "cannot load libdnnl.so.2: not found", -1, 0, 0}).summary,
            "OpenBLAS (oneDNN not compared: cannot load libdnnl.so.2: not found)");
  // The program's choice: the variable first, then the verdict.
  Verdict v;
  v.fp32_linear = "oneDNN";
  EXPECT_EQ(fp32_linear_kernel(nullptr, v), "oneDNN");
  EXPECT_EQ(fp32_linear_kernel("openblas", v), "OpenBLAS");
  EXPECT_EQ(fp32_linear_kernel("onednn", std::nullopt), "oneDNN");
  EXPECT_EQ(fp32_linear_kernel(nullptr, std::nullopt), "OpenBLAS");
  EXPECT_EQ(fp32_linear_kernel("oneDNN", v), std::nullopt);  // the values are lower case
  EXPECT_EQ(fp32_linear_kernel("", v), std::nullopt);
  // Under bf16 autocast: oneDNN's bf16 GEMM unless the variable says libtorch.
  EXPECT_EQ(bf16_linear_kernel(nullptr), "oneDNN");
  EXPECT_EQ(bf16_linear_kernel("onednn"), "oneDNN");
  EXPECT_EQ(bf16_linear_kernel("libtorch"), "libtorch");
  EXPECT_EQ(bf16_linear_kernel("openblas"), std::nullopt);
  EXPECT_EQ(bf16_linear_kernel(""), std::nullopt);
}

TEST(KernelsChoice, ModeValues) {
  EXPECT_EQ(parse_mode(""), Mode::kAuto);
  EXPECT_EQ(parse_mode("auto"), Mode::kAuto);
  EXPECT_EQ(parse_mode("default"), Mode::kDefault);
  EXPECT_EQ(parse_mode("probe"), Mode::kProbe);
  EXPECT_EQ(parse_mode("off"), std::nullopt);
  EXPECT_EQ(parse_mode("Default"), std::nullopt);
}

TEST(KernelsCache, Folder) {
  EXPECT_EQ(cache_folder("/x/cache", "/home/u"), "/x/cache/compacter");
  EXPECT_EQ(cache_folder("relative", "/home/u"), "/home/u/.cache/compacter");
  EXPECT_EQ(cache_folder(nullptr, "/home/u"), "/home/u/.cache/compacter");
  EXPECT_EQ(cache_folder("", ""), "");
  EXPECT_EQ(cache_folder(nullptr, nullptr), "");
}

TEST(KernelsCache, KeyNamesTheCpuAndTheLibrary) {
  const CpuInfo a = parse_cpu("GenuineIntel;6;207;avx avx2 fma");
  CpuInfo b = a;
  b.flags.push_back("avx512f");
  EXPECT_NE(cache_key(a, "libblas.so.3", ""), cache_key(b, "libblas.so.3", ""));
  EXPECT_NE(cache_key(a, "libblas.so.3", ""), cache_key(a, "/other/libblas.so.3", ""));
  EXPECT_NE(cache_key(a, "libblas.so.3", ""), cache_key(a, "libblas.so.3", "/opt/lib"));
  EXPECT_EQ(cache_key(a, "libblas.so.3", ""), cache_key(a, "libblas.so.3", ""));
}

bool accept(const std::vector<LibraryFile>&) {
  return true;
}
bool refuse(const std::vector<LibraryFile>&) {
  return false;
}

TEST(KernelsCache, WritesReadsAndIgnoresWhatItCannotUse) {
  Verdict v;
  v.mode = "auto";
  v.core = "SkylakeX";
  const std::vector<LibraryFile> files = {{"/lib/libblas.so.3", "/real/libblas.so.3", 10, 20}};
  const std::string text = cache_with("", "key-1", files, v);
  auto back = read_cache(text, "key-1", &accept);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->core, "SkylakeX");
  EXPECT_FALSE(read_cache(text, "key-2", &accept));  // another machine's entry only
  EXPECT_FALSE(read_cache(text, "key-1", &refuse));  // the library changed
  // A second machine's entry is added beside the first.
  Verdict w = v;
  w.core = "Haswell";
  const std::string both = cache_with(text, "key-2", files, w);
  EXPECT_EQ(read_cache(both, "key-1", &accept)->core, "SkylakeX");
  EXPECT_EQ(read_cache(both, "key-2", &accept)->core, "Haswell");
  // Corrupt or foreign files are ignored, and rewritten whole.
  for (const std::string& bad :
       {std::string(""), std::string("{\"format\": 1, \"entries\": {\"key-1\": "),
        std::string("[1, 2]"), std::string("{\"format\": 99, \"entries\": {}}"),
        std::string("{\"format\": 1, \"entries\": {\"key-1\": {\"files\": 3}}}")}) {
    EXPECT_FALSE(read_cache(bad, "key-1", &accept)) << bad;
    EXPECT_EQ(read_cache(cache_with(bad, "key-1", files, v), "key-1", &accept)->core, "SkylakeX")
        << bad;
  }
}

TEST(KernelsCache, LibraryFilesAreComparedBySizeTimeAndTarget) {
  testing::TempDir dir;
  testing::write_file(dir.file("libfake.so.1"), "one");
  std::filesystem::create_symlink(dir.file("libfake.so.1"), dir.file("libfake.so"));
  const auto f = describe_library_file(dir.file("libfake.so"));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->real, std::filesystem::canonical(dir.file("libfake.so.1")).string());
  EXPECT_EQ(f->size, 3);
  EXPECT_TRUE(library_files_unchanged({*f}));
  // The link switched to another file (update-alternatives), the file rewritten, or gone.
  testing::write_file(dir.file("libfake.so.2"), "one");
  std::filesystem::remove(dir.file("libfake.so"));
  std::filesystem::create_symlink(dir.file("libfake.so.2"), dir.file("libfake.so"));
  EXPECT_FALSE(library_files_unchanged({*f}));
  const auto g = describe_library_file(dir.file("libfake.so"));
  testing::write_file(dir.file("libfake.so.2"), "longer");
  EXPECT_FALSE(library_files_unchanged({*g}));
  std::filesystem::remove(dir.file("libfake.so.2"));
  EXPECT_FALSE(library_files_unchanged({*g}));
  EXPECT_FALSE(describe_library_file(dir.file("libfake.so.2")));
  EXPECT_FALSE(library_files_unchanged({}));
}

}  // namespace
}  // namespace compacter::kernels

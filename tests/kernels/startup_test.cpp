// The launcher's decision (compacter/kernels/startup.h) on faked inputs: the arguments and
// variables that switch it off or hand it a user's core, and decide() with made-up trials
// (which cores it tries, what it keeps, what it caches) instead of probe processes.
#include "compacter/kernels/startup.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "support/test_support.h"

namespace compacter::kernels {
namespace {

using Env = std::map<std::string, std::string>;
using Args = std::vector<std::string>;

TEST(KernelsRequest, AutoByDefault) {
  const Request r = read_request({"compacter", "train", "--method", "lora"}, {});
  EXPECT_EQ(r.mode, Mode::kAuto);
  EXPECT_EQ(r.user_core, "");
  EXPECT_EQ(r.warning, "");
}

TEST(KernelsRequest, AUserCoreIsNeverOverridden) {
  // Whatever the mode (which still says whether the linear layers' kernel is compared).
  Request r = read_request({"compacter", "--kernels", "auto", "bench"},
                           {{"OPENBLAS_CORETYPE", "Haswell"}, {"COMPACTER_KERNELS", "probe"}});
  EXPECT_EQ(r.user_core, "Haswell");
  EXPECT_EQ(r.mode, Mode::kAuto);
  EXPECT_EQ(r.reason, "OPENBLAS_CORETYPE=Haswell was set by the user; --kernels auto");
  r = read_request({"compacter"},
                   {{"OPENBLAS_CORETYPE", "Haswell"}, {"COMPACTER_KERNELS", "probe"}});
  EXPECT_EQ(r.mode, Mode::kProbe);
  r = read_request({"compacter"},
                   {{"OPENBLAS_CORETYPE", "Haswell"}, {"COMPACTER_LAUNCHER_KEEP_ENV", "1"}});
  EXPECT_EQ(r.user_core, "Haswell");
  EXPECT_EQ(r.mode, Mode::kDefault);
  EXPECT_EQ(read_request({"compacter"}, {{"OPENBLAS_CORETYPE", "Zen"}}).reason,
            "OPENBLAS_CORETYPE=Zen was set by the user");
}

TEST(KernelsRequest, TheOptionBeforeTheCommand) {
  EXPECT_EQ(read_request({"compacter", "--kernels", "default", "bench"}, {}).mode, Mode::kDefault);
  EXPECT_EQ(read_request({"compacter", "--kernels=default", "bench"}, {}).mode, Mode::kDefault);
  EXPECT_EQ(read_request({"compacter", "--kernels", "default", "bench"}, {}).reason,
            "--kernels default");
  // The option wins over the variable.
  EXPECT_EQ(
      read_request({"compacter", "--kernels", "auto"}, {{"COMPACTER_KERNELS", "default"}}).mode,
      Mode::kAuto);
  // After the command it is the command's argument, not the launcher's.
  EXPECT_EQ(read_request({"compacter", "predict", "--kernels", "default"}, {}).mode, Mode::kAuto);
  EXPECT_EQ(read_request({"compacter", "--", "--kernels", "default"}, {}).mode, Mode::kAuto);
  // An unknown value: nothing is decided (compacter-core reports the usage error).
  EXPECT_EQ(read_request({"compacter", "--kernels", "fast", "bench"}, {}).mode, Mode::kDefault);
  EXPECT_EQ(read_request({"compacter", "--kernels", "probe", "bench"}, {}).mode, Mode::kDefault);
}

TEST(KernelsRequest, TheVariable) {
  EXPECT_EQ(read_request({"compacter"}, {{"COMPACTER_KERNELS", "default"}}).mode, Mode::kDefault);
  EXPECT_EQ(read_request({"compacter"}, {{"COMPACTER_KERNELS", "auto"}}).mode, Mode::kAuto);
  EXPECT_EQ(read_request({"compacter"}, {{"COMPACTER_KERNELS", ""}}).mode, Mode::kAuto);
  EXPECT_EQ(read_request({"compacter"}, {{"COMPACTER_KERNELS", "probe"}}).mode, Mode::kProbe);
  const Request bad = read_request({"compacter"}, {{"COMPACTER_KERNELS", "off"}});
  EXPECT_EQ(bad.mode, Mode::kDefault);
  EXPECT_NE(bad.warning.find("COMPACTER_KERNELS=off"), std::string::npos);
  EXPECT_EQ(read_request({"compacter"}, {{"COMPACTER_LAUNCHER_KEEP_ENV", "1"}}).mode,
            Mode::kDefault);
}

// Made-up trials: each core's rate, "wrong" or "crash" for those that fail; the calls counted.
struct FakeProbe {
  std::string default_core = "Prescott";
  std::map<std::string, double> rates = {
      {"", 35}, {"Cooperlake", 220}, {"SkylakeX", 290}, {"Haswell", 130}};
  std::map<std::string, std::string> broken = {{"SkylakeX", "wrong"}};
  std::vector<std::string> files;
  std::vector<std::string> calls;
  ProbeReport operator()(const std::string& requested) {
    calls.push_back(requested);
    ProbeReport r;
    r.loaded = r.openblas = true;
    r.config = "OpenBLAS 0.3.21 fake";
    r.files = files;
    r.trial.requested = requested;
    r.trial.ran = requested.empty() ? default_core : requested;
    r.trial.error_ratio = 0.2;
    r.trial.gflops = rates[requested];
    const std::string b = broken.count(requested) ? broken[requested] : "";
    if (b == "wrong") r.trial.error_ratio = 1e4;
    if (b == "crash") r.trial = {requested, r.trial.ran, "crashed (signal 11)", -1, 0};
    return r;
  }
};

StartupSettings xeon(const std::string& cache_folder = "") {
  StartupSettings s;
  s.cpu = parse_cpu(
      "GenuineIntel;6;207;sse3 avx fma avx2 avx512f avx512cd avx512bw avx512dq avx512vl "
      "avx512_bf16");
  s.cache_folder = cache_folder;
  return s;
}

TEST(KernelsDecide, SwitchedOffOrAUserCoreProbesNothing) {
  FakeProbe probe;
  auto run = [&](const std::string& c) { return probe(c); };
  Request off;
  off.mode = Mode::kDefault;
  off.reason = "--kernels default";
  Verdict v = decide(off, xeon(), run);
  EXPECT_EQ(v.mode, "default");
  EXPECT_EQ(v.core, "");
  Request user;
  user.mode = Mode::kDefault;
  user.user_core = "Zen";
  v = decide(user, xeon(), run);
  EXPECT_EQ(v.mode, "user");
  EXPECT_TRUE(probe.calls.empty());
  // Nothing is set for the program but the verdict.
  const auto env = environment_for(v);
  EXPECT_EQ(env.count("OPENBLAS_CORETYPE"), 0u);
  EXPECT_EQ(env.count(kStartupVariable), 1u);
}

TEST(KernelsDecide, TriesTheCandidatesTwiceAndKeepsTheFastestCorrect) {
  FakeProbe probe;
  const Verdict v = decide(Request{}, xeon(), [&](const std::string& c) { return probe(c); });
  EXPECT_EQ(v.core, "Cooperlake");  // SkylakeX was faster, and wrong
  EXPECT_EQ(v.default_core, "Prescott");
  EXPECT_EQ(v.source, "probed");
  EXPECT_EQ(v.warning, "");
  // Round 1: the default, every candidate; round 2: the default and the correct ones.
  EXPECT_EQ(probe.calls, (std::vector<std::string>{"", "Cooperlake", "SkylakeX", "Haswell", "",
                                                   "Cooperlake", "Haswell"}));
  ASSERT_EQ(v.trials.size(), 4u);
  EXPECT_NE(v.trials[2].failure.find("wrong results"), std::string::npos);
  EXPECT_EQ(environment_for(v).at("OPENBLAS_CORETYPE"), "Cooperlake");
}

TEST(KernelsDecide, NoCorrectCandidateKeepsTheDefaultWithAWarning) {
  FakeProbe probe;
  probe.broken = {{"Cooperlake", "crash"}, {"SkylakeX", "wrong"}, {"Haswell", "wrong"}};
  const Verdict v = decide(Request{}, xeon(), [&](const std::string& c) { return probe(c); });
  EXPECT_EQ(v.core, "");
  EXPECT_NE(v.warning.find("keeping the default"), std::string::npos);
  EXPECT_EQ(environment_for(v).count("OPENBLAS_CORETYPE"), 0u);
}

TEST(KernelsDecide, ADefaultThatMatchesTheCpuIsKeptWithoutTrials) {
  FakeProbe probe;
  probe.default_core = "Cooperlake";
  const Verdict v = decide(Request{}, xeon(), [&](const std::string& c) { return probe(c); });
  EXPECT_EQ(probe.calls, (std::vector<std::string>{""}));
  EXPECT_EQ(v.core, "");
  EXPECT_NE(v.summary.find("the best kernels this CPU supports"), std::string::npos);
}

TEST(KernelsDecide, NoOpenBlasOrNoLibraryDecidesNothing) {
  auto not_openblas = [](const std::string& c) {
    ProbeReport r;
    r.loaded = true;
    r.trial.requested = c;
    r.trial.failure = "not OpenBLAS (no openblas_get_corename)";
    return r;
  };
  Verdict v = decide(Request{}, xeon(), not_openblas);
  EXPECT_EQ(v.core, "");
  EXPECT_NE(v.summary.find("is not OpenBLAS"), std::string::npos);
  auto missing = [](const std::string& c) {
    ProbeReport r;
    r.trial.requested = c;
    r.trial.failure = "cannot load libblas.so.3: not found";
    return r;
  };
  v = decide(Request{}, xeon(), missing);
  EXPECT_NE(v.summary.find("cannot load"), std::string::npos);
}

TEST(KernelsDecide, TheVerdictIsCachedUntilTheLibraryChanges) {
  testing::TempDir dir;
  testing::write_file(dir.file("libblas.so.3"), "version 1");
  FakeProbe probe;
  probe.files = {dir.file("libblas.so.3")};
  auto run = [&](const std::string& c) { return probe(c); };
  const std::string cache = dir.file("cache");
  const Verdict first = decide(Request{}, xeon(cache), run);
  EXPECT_EQ(first.core, "Cooperlake");
  const size_t probed = probe.calls.size();
  EXPECT_TRUE(std::filesystem::exists(cache + "/kernels.json"));

  const Verdict second = decide(Request{}, xeon(cache), run);
  EXPECT_EQ(probe.calls.size(), probed);  // no trial
  EXPECT_EQ(second.source, "cached");
  EXPECT_EQ(second.core, "Cooperlake");

  // Another CPU is another entry.
  StartupSettings other = xeon(cache);
  other.cpu.model = 143;
  decide(Request{}, other, run);
  EXPECT_GT(probe.calls.size(), probed);

  // COMPACTER_KERNELS=probe decides again.
  size_t before = probe.calls.size();
  Request again;
  again.mode = Mode::kProbe;
  EXPECT_EQ(decide(again, xeon(cache), run).source, "probed");
  EXPECT_GT(probe.calls.size(), before);

  // An updated library (another size) invalidates the entry.
  testing::write_file(dir.file("libblas.so.3"), "version 2, longer");
  before = probe.calls.size();
  EXPECT_EQ(decide(Request{}, xeon(cache), run).source, "probed");
  EXPECT_GT(probe.calls.size(), before);

  // A corrupt cache is ignored and rewritten.
  testing::write_file(cache + "/kernels.json", "{\"format\": 1, \"entr");
  EXPECT_EQ(decide(Request{}, xeon(cache), run).source, "probed");
  EXPECT_EQ(decide(Request{}, xeon(cache), run).source, "cached");
}

// The linear layers' comparison runs once per probe, with the core the verdict sets (or the
// user's), and is cached with it; switched off it does not run.
TEST(KernelsDecide, TheLinearLayersKernelIsComparedWithTheChosenCoreAndCached) {
  testing::TempDir dir;
  testing::write_file(dir.file("libblas.so.3"), "x");
  testing::write_file(dir.file("libdnnl.so.2"), "y");
  FakeProbe probe;
  probe.files = {dir.file("libblas.so.3")};
  std::vector<std::string> linear_calls;
  double onednn = 300;
  auto linear = [&](const std::string& core) {
    linear_calls.push_back(core);
    LinearReport r;
    r.trial = {2, "", 0.3, 200, onednn};
    r.files = {dir.file("libdnnl.so.2")};
    return r;
  };
  auto run = [&](const std::string& c) { return probe(c); };
  const std::string cache = dir.file("cache");
  Verdict v = decide(Request{}, xeon(cache), run, linear);
  EXPECT_EQ(linear_calls, std::vector<std::string>{"Cooperlake"});
  EXPECT_EQ(v.fp32_linear, "oneDNN");
  EXPECT_EQ(v.linear_summary, "oneDNN (oneDNN 300.0 GFLOP/s, OpenBLAS 200.0 GFLOP/s on 2 threads)");
  ASSERT_TRUE(v.linear.has_value());
  EXPECT_EQ(v.linear->onednn_gflops, 300);
  // Cached with the core; the program gets it in the verdict.
  v = decide(Request{}, xeon(cache), run, linear);
  EXPECT_EQ(v.source, "cached");
  EXPECT_EQ(linear_calls.size(), 1u);
  EXPECT_EQ(v.fp32_linear, "oneDNN");
  const Verdict passed =
      verdict_from_json(nlohmann::json::parse(environment_for(v).at(kStartupVariable)));
  EXPECT_EQ(passed.fp32_linear, "oneDNN");
  EXPECT_EQ(passed.linear->blas_gflops, 200);
  // An updated oneDNN invalidates the entry; now OpenBLAS is more than 15% faster.
  testing::write_file(dir.file("libdnnl.so.2"), "a newer version");
  onednn = 160;
  v = decide(Request{}, xeon(cache), run, linear);
  EXPECT_EQ(v.source, "probed");
  EXPECT_EQ(linear_calls.size(), 2u);
  EXPECT_EQ(v.fp32_linear, "OpenBLAS");
  // A default that needs no trials is compared too, with the default core ("").
  FakeProbe fine;
  fine.default_core = "Cooperlake";
  v = decide(
      Request{}, xeon(), [&](const std::string& c) { return fine(c); }, linear);
  EXPECT_EQ(linear_calls.back(), "");
  // Switched off: nothing runs, the layers keep OpenBLAS.
  Request off;
  off.mode = Mode::kDefault;
  v = decide(off, xeon(cache), run, linear);
  EXPECT_EQ(linear_calls.size(), 3u);
  EXPECT_EQ(v.fp32_linear, "");
  // A user's core type is kept (never set by us) and the layers are compared with it, once.
  Request user;
  user.user_core = "Zen";
  onednn = 400;
  const size_t core_trials = probe.calls.size();
  v = decide(user, xeon(cache), run, linear);
  EXPECT_EQ(linear_calls.back(), "Zen");
  EXPECT_EQ(v.mode, "user");
  EXPECT_EQ(v.source, "probed");
  EXPECT_EQ(v.fp32_linear, "oneDNN");
  EXPECT_EQ(environment_for(v).count("OPENBLAS_CORETYPE"), 0u);
  v = decide(user, xeon(cache), run, linear);
  EXPECT_EQ(v.source, "cached");
  EXPECT_EQ(v.mode, "user");
  EXPECT_EQ(v.fp32_linear, "oneDNN");
  EXPECT_EQ(linear_calls.size(), 4u);
  EXPECT_EQ(probe.calls.size(), core_trials);  // no core trial for a user's core
  // The automatic entry is another one: still the earlier comparison.
  EXPECT_EQ(decide(Request{}, xeon(cache), run, linear).fp32_linear, "OpenBLAS");
  // A user's core with the choice switched off (--kernels default, KEEP_ENV): nothing runs;
  // with COMPACTER_KERNELS=probe the comparison runs again.
  Request user_off = user;
  user_off.mode = Mode::kDefault;
  v = decide(user_off, xeon(cache), run, linear);
  EXPECT_EQ(v.mode, "user");
  EXPECT_EQ(v.fp32_linear, "");
  EXPECT_EQ(linear_calls.size(), 4u);
  Request user_probe = user;
  user_probe.mode = Mode::kProbe;
  EXPECT_EQ(decide(user_probe, xeon(cache), run, linear).source, "probed");
  EXPECT_EQ(linear_calls.size(), 5u);
  // Another thread count is another entry.
  StartupSettings more = xeon(cache);
  more.linear_threads = 8;
  EXPECT_EQ(decide(user, more, run, linear).source, "probed");
  EXPECT_EQ(linear_calls.size(), 6u);
}

TEST(KernelsDecide, ACacheThatCannotBeWrittenIsNoError) {
  testing::TempDir dir;
  testing::write_file(dir.file("libblas.so.3"), "x");
  testing::write_file(dir.file("not-a-folder"), "x");
  FakeProbe probe;
  probe.files = {dir.file("libblas.so.3")};
  const Verdict v = decide(Request{}, xeon(dir.file("not-a-folder") + "/compacter"),
                           [&](const std::string& c) { return probe(c); });
  EXPECT_EQ(v.core, "Cooperlake");
}

}  // namespace
}  // namespace compacter::kernels

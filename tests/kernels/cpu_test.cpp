// The CPU's tiers and the candidate core types (compacter/kernels/cpu.h), on described CPUs:
// nothing here depends on the CPU the tests run on.
#include "compacter/kernels/cpu.h"

#include <gtest/gtest.h>

#include "compacter/core/error.h"

namespace compacter::kernels {
namespace {

const std::string kAvx512 = "sse3 ssse3 avx fma avx2 avx512f avx512cd avx512bw avx512dq avx512vl";

// The CPU of issue 16: an Intel Xeon, family 6 model 207, AVX-512 with bf16 and fp16, no AMX.
CpuInfo xeon_207() {
  return parse_cpu("GenuineIntel;6;207;" + kAvx512 + " avx512_bf16 avx512_fp16 avx512_vnni");
}

TEST(KernelsCpu, ParsesDescriptions) {
  const CpuInfo c = parse_cpu("AuthenticAMD;25;17;sse3 avx avx2 fma");
  EXPECT_EQ(c.vendor, "AuthenticAMD");
  EXPECT_EQ(c.family, 25);
  EXPECT_EQ(c.model, 17);
  EXPECT_EQ(c.flags, (std::vector<std::string>{"sse3", "avx", "avx2", "fma"}));
  EXPECT_TRUE(c.has("avx2"));
  EXPECT_FALSE(c.has("avx512f"));
  EXPECT_THROW(parse_cpu("GenuineIntel;6"), Error);
  EXPECT_THROW(parse_cpu("GenuineIntel;six;207;avx"), Error);
}

TEST(KernelsCpu, TiersOfCoreNames) {
  EXPECT_EQ(core_tier("Prescott"), kTierSse);
  EXPECT_EQ(core_tier("prescott"), kTierSse);  // OpenBLAS takes any case
  EXPECT_EQ(core_tier("Sandybridge"), kTierAvx);
  EXPECT_EQ(core_tier("Haswell"), kTierAvx2);
  EXPECT_EQ(core_tier("ZEN"), kTierAvx2);
  EXPECT_EQ(core_tier("SkylakeX"), kTierAvx512);
  EXPECT_EQ(core_tier("Cooperlake"), kTierAvx512Bf16);
  EXPECT_EQ(core_tier("SapphireRapids"), kTierAmx);
  EXPECT_EQ(core_tier("NeoverseN1"), kTierUnknown);
  EXPECT_EQ(core_tier(""), kTierUnknown);
}

TEST(KernelsCpu, TiersOfCpus) {
  EXPECT_EQ(cpu_tier(parse_cpu("x;6;1;")), kTierUnknown);
  EXPECT_EQ(cpu_tier(parse_cpu("x;6;1;sse3 ssse3")), kTierSse);
  EXPECT_EQ(cpu_tier(parse_cpu("x;6;1;sse3 avx")), kTierAvx);
  EXPECT_EQ(cpu_tier(parse_cpu("x;6;1;sse3 avx avx2")), kTierAvx);  // AVX2 without FMA
  EXPECT_EQ(cpu_tier(parse_cpu("x;6;1;sse3 avx avx2 fma")), kTierAvx2);
  EXPECT_EQ(cpu_tier(parse_cpu("x;6;1;sse3 avx avx2 fma avx512f")), kTierAvx2);  // F alone
  EXPECT_EQ(cpu_tier(parse_cpu("x;6;1;" + kAvx512)), kTierAvx512);
  EXPECT_EQ(cpu_tier(xeon_207()), kTierAvx512Bf16);
  EXPECT_EQ(cpu_tier(parse_cpu("x;6;143;" + kAvx512 + " avx512_bf16 amx_tile amx_bf16")), kTierAmx);
}

TEST(KernelsCpu, ADefaultBelowTheCpuIsRecognised) {
  EXPECT_TRUE(default_is_below_cpu(xeon_207(), "Prescott"));
  EXPECT_TRUE(default_is_below_cpu(xeon_207(), "Haswell"));
  EXPECT_TRUE(default_is_below_cpu(xeon_207(), "SkylakeX"));
  EXPECT_FALSE(default_is_below_cpu(xeon_207(), "Cooperlake"));
  EXPECT_FALSE(default_is_below_cpu(xeon_207(), "SapphireRapids"));
  EXPECT_FALSE(default_is_below_cpu(xeon_207(), "SomethingNew"));  // unknown: left alone
  // A CPU without AVX2 is not worth a probe, whatever the default.
  EXPECT_FALSE(default_is_below_cpu(parse_cpu("GenuineIntel;6;42;sse3 avx"), "Prescott"));
}

TEST(KernelsCpu, CandidatesHighestTierFirstAndOnlyWhatTheCpuRuns) {
  EXPECT_EQ(candidate_cores(xeon_207(), "Prescott"),
            (std::vector<std::string>{"Cooperlake", "SkylakeX", "Haswell"}));
  EXPECT_EQ(candidate_cores(xeon_207(), "Haswell"),
            (std::vector<std::string>{"Cooperlake", "SkylakeX"}));
  EXPECT_TRUE(candidate_cores(xeon_207(), "Cooperlake").empty());
  // Zen's kernels only on AMD (and Hygon) CPUs; SapphireRapids only with AMX.
  const CpuInfo zen4 = parse_cpu("AuthenticAMD;25;17;" + kAvx512 + " avx512_bf16");
  EXPECT_EQ(candidate_cores(zen4, "Prescott"),
            (std::vector<std::string>{"Cooperlake", "SkylakeX", "Haswell", "Zen"}));
  const CpuInfo amx = parse_cpu("GenuineIntel;6;143;" + kAvx512 + " avx512_bf16 amx_tile amx_bf16");
  EXPECT_EQ(candidate_cores(amx, "Prescott").front(), "SapphireRapids");
  const CpuInfo avx2 = parse_cpu("GenuineIntel;6;60;sse3 avx avx2 fma");
  EXPECT_EQ(candidate_cores(avx2, "Sandybridge"), (std::vector<std::string>{"Haswell"}));
}

TEST(KernelsCpu, WhatACoreNeeds) {
  const CpuInfo avx2 = parse_cpu("GenuineIntel;6;60;sse3 avx avx2 fma");
  EXPECT_TRUE(cpu_runs_core(avx2, "Haswell"));
  EXPECT_TRUE(cpu_runs_core(avx2, "Sandybridge"));
  EXPECT_FALSE(cpu_runs_core(avx2, "Bulldozer"));  // FMA4 and XOP: AMD only
  EXPECT_FALSE(cpu_runs_core(avx2, "SkylakeX"));
  EXPECT_FALSE(cpu_runs_core(avx2, "Unheardof"));
}

}  // namespace
}  // namespace compacter::kernels

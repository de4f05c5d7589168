// What the processor offers (cpuid) and which of OpenBLAS's x86-64 kernel sets ("core types")
// it can run (README "Kernels at start-up"; issue 16). OpenBLAS picks its core type from the
// CPU's family and model; on a CPU newer than the OpenBLAS build it falls back to the generic
// SSE3 kernels (Prescott), 5-7x slower in fp32 than the AVX-512 ones the CPU could run. The tiers
// below order the core types by the instructions their kernels use, so that a default below
// what the CPU supports can be recognised and better candidates listed. Torch-free: the launcher
// (tools/launcher) compiles this file too. Everything but detect_cpu() is a function of its
// arguments.
#pragma once
#include <string>
#include <vector>

namespace compacter::kernels {

// The processor, with /proc/cpuinfo's flag names. A vector-register flag (avx, avx2, avx512*,
// amx*) is listed only when the operating system saves those registers (xgetbv), i.e. when a
// program may use it.
struct CpuInfo {
  std::string vendor;      // "GenuineIntel", "AuthenticAMD", ...; "" when not x86
  std::string model_name;  // the brand string, e.g. "Intel(R) Xeon(R) Platinum 8573C"
  int family = 0, model = 0, stepping = 0;
  std::vector<std::string> flags;  // sse3 ssse3 sse4_1 sse4_2 avx fma avx2 avx512f avx512cd ...
  bool has(const std::string& flag) const;
};

// This processor (cpuid and xgetbv; an empty CpuInfo off x86-64).
CpuInfo detect_cpu();

// A CpuInfo written as "vendor;family;model;flag flag ..." (the launcher's test hook
// COMPACTER_KERNELS_TEST_CPU); throws compacter::Error when malformed.
CpuInfo parse_cpu(const std::string& text);

// Instruction-set tiers of core types and of CPUs.
enum Tier : int {
  kTierUnknown = -1,
  kTierSse = 0,         // Prescott, Core2, Nehalem, Barcelona, ... (the generic kernels)
  kTierAvx = 1,         // Sandybridge, Bulldozer, Piledriver, Steamroller, Excavator
  kTierAvx2 = 2,        // Haswell, Zen: AVX2 and FMA
  kTierAvx512 = 3,      // SkylakeX: AVX-512 F, CD, BW, DQ, VL
  kTierAvx512Bf16 = 4,  // Cooperlake: and AVX512_BF16
  kTierAmx = 5,         // SapphireRapids: and AMX (tiles, bf16)
};

// The tier of a core type as OpenBLAS spells it (case-insensitive); kTierUnknown for a name
// this file does not know (then nothing is changed).
int core_tier(const std::string& core);
// The highest tier whose instructions the CPU has.
int cpu_tier(const CpuInfo& cpu);
// True when the CPU has every instruction the core type's kernels use (false for unknown names).
bool cpu_runs_core(const CpuInfo& cpu, const std::string& core);
// True when the library's default core is a known type of a lower tier than the CPU's, and the
// CPU has at least AVX2: then faster kernels are worth trying.
bool default_is_below_cpu(const CpuInfo& cpu, const std::string& default_core);
// The core types worth trying instead of the default: each type of tier AVX2 or higher that the
// CPU runs and whose tier is above the default's, highest tier first (Haswell before Zen; Zen
// only on AMD and Hygon CPUs). Empty unless default_is_below_cpu().
std::vector<std::string> candidate_cores(const CpuInfo& cpu, const std::string& default_core);

// Case-insensitive equality of core names (OpenBLAS accepts "skylakex", reports "SkylakeX").
bool same_core(const std::string& a, const std::string& b);

}  // namespace compacter::kernels

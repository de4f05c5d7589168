// cpuid and the core-type tiers: see cpu.h. Bit positions: Intel SDM vol. 2A, CPUID (leaves 1
// and 7); XCR0 bits: vol. 1 §13 (1 SSE, 2 AVX, 5-7 AVX-512 state, 17-18 AMX tiles).
#include "compacter/kernels/cpu.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <sstream>

#include "compacter/core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace compacter::kernels {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The flags each tier adds to the one below it.
const std::vector<std::vector<std::string>>& tier_flags() {
  static const std::vector<std::vector<std::string>> t = {
      {"sse3"},        {"avx"},
      {"avx2", "fma"}, {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"},
      {"avx512_bf16"}, {"amx_tile", "amx_bf16"},
  };
  return t;
}

struct CoreName {
  const char* name;
  int tier;
};
// OpenBLAS 0.3.x's x86-64 DYNAMIC_ARCH core names (driver/others/dynamic.c).
const CoreName kCores[] = {
    {"Katmai", kTierSse},
    {"Coppermine", kTierSse},
    {"Northwood", kTierSse},
    {"Prescott", kTierSse},
    {"Banias", kTierSse},
    {"Atom", kTierSse},
    {"Core2", kTierSse},
    {"Penryn", kTierSse},
    {"Dunnington", kTierSse},
    {"Nehalem", kTierSse},
    {"Athlon", kTierSse},
    {"Opteron", kTierSse},
    {"Opteron_SSE3", kTierSse},
    {"Barcelona", kTierSse},
    {"Nano", kTierSse},
    {"Bobcat", kTierSse},
    {"Sandybridge", kTierAvx},
    {"Bulldozer", kTierAvx},
    {"Piledriver", kTierAvx},
    {"Steamroller", kTierAvx},
    {"Excavator", kTierAvx},
    {"Haswell", kTierAvx2},
    {"Zen", kTierAvx2},
    {"SkylakeX", kTierAvx512},
    {"Cooperlake", kTierAvx512Bf16},
    {"SapphireRapids", kTierAmx},
};
// The candidates, highest tier first.
const char* const kCandidates[] = {"SapphireRapids", "Cooperlake", "SkylakeX", "Haswell", "Zen"};

#if defined(__x86_64__) || defined(__i386__)
uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

}  // namespace

bool CpuInfo::has(const std::string& flag) const {
  return std::find(flags.begin(), flags.end(), flag) != flags.end();
}

CpuInfo detect_cpu() {
  CpuInfo cpu;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return cpu;
  const unsigned max_leaf = a;
  char vendor[13] = {};
  std::copy_n(reinterpret_cast<const char*>(&b), 4, vendor);
  std::copy_n(reinterpret_cast<const char*>(&d), 4, vendor + 4);
  std::copy_n(reinterpret_cast<const char*>(&c), 4, vendor + 8);
  cpu.vendor = vendor;
  auto add = [&](bool present, const char* name) {
    if (present) cpu.flags.push_back(name);
  };
  __get_cpuid(1, &a, &b, &c, &d);
  const int base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
  cpu.family = base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family;
  cpu.model =
      (base_family == 6 || base_family == 0xf) ? base_model | (((a >> 16) & 0xf) << 4) : base_model;
  cpu.stepping = a & 0xf;
  const bool osxsave = c & (1u << 27);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool avx_state = (xcr0 & 0x6) == 0x6;
  const bool avx512_state = avx_state && (xcr0 & 0xe0) == 0xe0;
  const bool amx_state = (xcr0 & 0x60000) == 0x60000;
  add(c & (1u << 0), "sse3");
  add(c & (1u << 9), "ssse3");
  add(c & (1u << 19), "sse4_1");
  add(c & (1u << 20), "sse4_2");
  add(avx_state && (c & (1u << 28)), "avx");
  add(avx_state && (c & (1u << 12)), "fma");
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    add(avx_state && (b & (1u << 5)), "avx2");
    add(avx512_state && (b & (1u << 16)), "avx512f");
    add(avx512_state && (b & (1u << 17)), "avx512dq");
    add(avx512_state && (b & (1u << 28)), "avx512cd");
    add(avx512_state && (b & (1u << 30)), "avx512bw");
    add(avx512_state && (b & (1u << 31)), "avx512vl");
    add(avx512_state && (c & (1u << 11)), "avx512_vnni");
    add(avx512_state && (d & (1u << 23)), "avx512_fp16");
    add(amx_state && (d & (1u << 24)), "amx_tile");
    add(amx_state && (d & (1u << 22)), "amx_bf16");
    add(amx_state && (d & (1u << 25)), "amx_int8");
    const unsigned subleaves = a;
    if (subleaves >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      add(avx512_state && (a & (1u << 5)), "avx512_bf16");
    }
  }
  __get_cpuid(0x80000000, &a, &b, &c, &d);
  if (a >= 0x80000004) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      unsigned r[4];
      __get_cpuid(0x80000002 + i, &r[0], &r[1], &r[2], &r[3]);
      std::copy_n(reinterpret_cast<const char*>(r), 16, brand + 16 * i);
    }
    std::string name = brand;
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    cpu.model_name = name;
  }
#endif
  return cpu;
}

CpuInfo parse_cpu(const std::string& text) {
  CpuInfo cpu;
  std::stringstream in(text);
  std::string family, model, flags;
  const bool ok = std::getline(in, cpu.vendor, ';') && std::getline(in, family, ';') &&
                  std::getline(in, model, ';') && text.find(';') != std::string::npos &&
                  std::count(text.begin(), text.end(), ';') == 3;
  std::getline(in, flags);
  check(ok, "a CPU description must be \"vendor;family;model;flags\", got \"", text, "\"");
  try {
    cpu.family = std::stoi(family);
    cpu.model = std::stoi(model);
  } catch (const std::exception&) {
    throw Error(cat("a CPU description's family and model must be numbers, got \"", text, "\""));
  }
  std::stringstream f(flags);
  for (std::string flag; f >> flag;) cpu.flags.push_back(flag);
  cpu.model_name = cat(cpu.vendor, " family ", cpu.family, " model ", cpu.model);
  return cpu;
}

bool same_core(const std::string& a, const std::string& b) {
  return lower(a) == lower(b);
}

int core_tier(const std::string& core) {
  for (const CoreName& c : kCores)
    if (same_core(c.name, core)) return c.tier;
  return kTierUnknown;
}

int cpu_tier(const CpuInfo& cpu) {
  int tier = kTierUnknown;
  const auto& t = tier_flags();
  for (size_t i = 0; i < t.size(); ++i) {
    for (const std::string& flag : t[i])
      if (!cpu.has(flag)) return tier;
    tier = static_cast<int>(i);
  }
  return tier;
}

bool cpu_runs_core(const CpuInfo& cpu, const std::string& core) {
  const int tier = core_tier(core);
  if (tier == kTierUnknown || tier > cpu_tier(cpu)) return false;
  // Bulldozer's family uses AMD's FMA4 and XOP, which no Intel CPU has.
  if (tier == kTierAvx && !same_core(core, "Sandybridge")) return cpu.vendor == "AuthenticAMD";
  return true;
}

bool default_is_below_cpu(const CpuInfo& cpu, const std::string& default_core) {
  const int tier = core_tier(default_core);
  const int have = cpu_tier(cpu);
  return tier != kTierUnknown && have >= kTierAvx2 && tier < have;
}

std::vector<std::string> candidate_cores(const CpuInfo& cpu, const std::string& default_core) {
  std::vector<std::string> out;
  if (!default_is_below_cpu(cpu, default_core)) return out;
  const int floor = core_tier(default_core);
  const bool amd = cpu.vendor == "AuthenticAMD" || cpu.vendor == "HygonGenuine";
  for (const char* name : kCandidates) {
    if (same_core(name, "Zen") && !amd) continue;
    if (core_tier(name) > floor && cpu_runs_core(cpu, name)) out.push_back(name);
  }
  return out;
}

}  // namespace compacter::kernels

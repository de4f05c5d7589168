// The launcher's decision about OpenBLAS's kernels (README "Kernels at start-up"; issue 16,
// point 1), made before the program proper loads libtorch and with it OpenBLAS:
//   1. what the user asked for: OPENBLAS_CORETYPE already set (never overridden; only the
//      linear layers' kernel is compared with it, 4.), `--kernels
//      auto|default` among the options before the command, COMPACTER_KERNELS, or
//      COMPACTER_LAUNCHER_KEEP_ENV (leave the environment alone);
//   2. in auto mode, the cached verdict for this CPU and BLAS library when there is one;
//   3. else a probe: a trial of the library's default core; when it is below what the CPU
//      supports (cpu.h), trials of the candidate core types, two interleaved rounds (the best
//      rate of each), and choose() among them; the verdict goes to the cache;
//   4. with it, OpenBLAS (that core) against oneDNN for the fp32 linear layers (choose_linear).
// Torch-free (the launcher compiles it).
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compacter/kernels/choice.h"
#include "compacter/kernels/cpu.h"
#include "compacter/kernels/probe.h"

namespace compacter::kernels {

// What the user asked for.
struct Request {
  Mode mode = Mode::kAuto;
  std::string user_core;  // OPENBLAS_CORETYPE as set by the user ("" none)
  std::string reason;     // what set the mode ("" for auto by default)
  std::string warning;    // an unusable COMPACTER_KERNELS value ("" none)
};
// From the program's arguments (args[0] the program; `--kernels X` or `--kernels=X` count only
// among the options before the command, as compacter-core reads them) and environment (unset
// variables absent). An unknown --kernels value disables the decision (compacter-core then
// reports it as a usage error). OPENBLAS_CORETYPE sets user_core whatever the mode.
Request read_request(const std::vector<std::string>& args,
                     const std::map<std::string, std::string>& env);

struct StartupSettings {
  CpuInfo cpu;
  ProbeSettings probe;
  std::string ld_library_path;
  std::string cache_folder;  // "" none (nothing cached)
  int rounds = 2;
  double min_gain = 1.10;
  int linear_threads = 0;  // the threads the linear layers' comparison runs with (in the key)
};

// One trial of a core type ("" the default); run_trial() but for tests.
using TrialRunner = std::function<ProbeReport(const std::string& requested)>;
// The linear layers' comparison with a core type ("" the default); run_linear_trial() at the
// program's threads, but for tests.
using LinearRunner = std::function<LinearReport(const std::string& core)>;

// The verdict (choice.h) for a request. Reads and writes the cache in settings.cache_folder
// (a cache that cannot be written is not an error). Never throws for a failed probe: the verdict
// then keeps the default and says why. When `linear` is given, a probed verdict also compares
// the fp32 linear layers' kernels with the core type it sets (4.), before it is cached.
Verdict decide(const Request& request, const StartupSettings& settings, const TrialRunner& trial,
               const LinearRunner& linear = nullptr);

// The environment the program should get: OPENBLAS_CORETYPE when a core was chosen, and
// kStartupVariable with the verdict as one JSON line.
std::map<std::string, std::string> environment_for(const Verdict& verdict);

}  // namespace compacter::kernels

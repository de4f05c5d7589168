// `compacter`, the command users run: it sets the environment that the numerical libraries read
// only once, while they load (libgomp, OpenBLAS), and then replaces itself with the program
// proper, `compacter-core` beside it (or in libexec/compacter/ once installed). Setting these
// from inside a program that links libtorch is too late (they were read before main), and
// re-executing that program would pay its ~0.7 s start-up twice; this launcher links nothing but
// the C library and takes about a millisecond.
//
// GOMP_SPINCOUNT=10000: libgomp's threads wait at the end of every parallel region by spinning,
// by default 300,000 iterations before they sleep. When another process competes for the cores, a
// spinning thread burns the time slice its descheduled partner needs: a batch of greedy decoding
// (thousands of small operators) ran 10x slower than on a quiet machine (500 inputs, a
// t5-small-sized decoder, 2 threads on 2 cores beside two busy processes: 49.5 s against 4.9 s
// quiet; with a spin count of 10,000: 9.5 s; README "Threads and a busy machine").
//
// OPENBLAS_CORETYPE (README "Kernels at start-up"; src/compacter/kernels/startup.h): OpenBLAS
// picks its kernels from the CPU's family and model and falls back to generic SSE3 ones on a CPU
// newer than its build (5-7x slower fp32 GEMMs on an AVX-512 Xeon of family 6, model 207, with
// Debian 12's OpenBLAS 0.3.21). When its default core is below what the CPU supports, the
// faster core types are tried in child processes (checked against a double-precision reference,
// timed) and the fastest correct one is set; the verdict is cached per machine and handed to the
// program in COMPACTER_KERNELS_STARTUP. `--kernels default` (before the command) or
// COMPACTER_KERNELS=default switch it off. With the core type, the fp32 linear layers' kernel is
// chosen: OpenBLAS or oneDNN's sgemm, whichever is faster on a T5 layer's products (checked).
//
// A variable the user set is never overridden; COMPACTER_LAUNCHER_KEEP_ENV=1 changes nothing.
// For tests: COMPACTER_BLAS_LIBRARY (the BLAS to probe instead of libblas.so.3),
// COMPACTER_ONEDNN_LIBRARY (the oneDNN to compare instead of libdnnl.so.2),
// COMPACTER_KERNELS_TEST_CPU ("vendor;family;model;flags" instead of cpuid) and
// COMPACTER_CORE_PROGRAM (the program to run instead of compacter-core).
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "compacter/kernels/startup.h"

extern char** environ;

namespace {

std::string directory_of_this_program() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool executable(const std::string& path) {
  return access(path.c_str(), X_OK) == 0;
}

std::map<std::string, std::string> environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq) env.emplace(std::string(*e, static_cast<size_t>(eq - *e)), std::string(eq + 1));
  }
  return env;
}

// The kernels' decision (startup.h) and the variables it sets. Never stops the program: a
// failure leaves OpenBLAS alone.
void choose_kernels(int argc, char** argv) {
  namespace k = compacter::kernels;
  try {
    const std::map<std::string, std::string> env = environment();
    const k::Request request = k::read_request(std::vector<std::string>(argv, argv + argc), env);
    if (!request.warning.empty()) std::fprintf(stderr, "%s\n", request.warning.c_str());
    k::StartupSettings s;
    const char* test_cpu = std::getenv("COMPACTER_KERNELS_TEST_CPU");
    s.cpu = test_cpu ? k::parse_cpu(test_cpu) : k::detect_cpu();
    if (const char* lib = std::getenv("COMPACTER_BLAS_LIBRARY")) s.probe.library = lib;
    if (const char* lib = std::getenv("COMPACTER_ONEDNN_LIBRARY")) s.probe.onednn_library = lib;
    if (const char* p = std::getenv("LD_LIBRARY_PATH")) s.ld_library_path = p;
    s.cache_folder = k::cache_folder(std::getenv("XDG_CACHE_HOME"), std::getenv("HOME"));
    std::vector<k::GemmCase> checks;  // their references cost milliseconds: only for a probe
    // The program's threads: OMP_NUM_THREADS, else every core (tools/compacter/main.cpp).
    const char* omp = std::getenv("OMP_NUM_THREADS");
    const int threads = omp && std::atoi(omp) > 0 ? std::atoi(omp)
                                                  : static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
    s.linear_threads = std::max(1, threads);
    const k::Verdict v = k::decide(
        request, s,
        [&](const std::string& core) {
          if (checks.empty()) checks = k::check_cases();
          return k::run_trial(core, checks, s.probe);
        },
        [&](const std::string& core) {
          if (checks.empty()) checks = k::check_cases();
          return k::run_linear_trial(core, s.linear_threads, checks, s.probe);
        });
    if (!v.warning.empty() && v.source == "probed") std::fprintf(stderr, "%s\n", v.warning.c_str());
    for (const auto& [name, value] : k::environment_for(v)) setenv(name.c_str(), value.c_str(), 1);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "compacter: warning: choosing the matrix kernels failed (%s)\n", e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (!std::getenv("COMPACTER_LAUNCHER_KEEP_ENV")) {
    if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT"))
      setenv("GOMP_SPINCOUNT", "10000", 0);
  }
  choose_kernels(argc, argv);
  if (const char* program = std::getenv("COMPACTER_CORE_PROGRAM")) {
    execv(program, argv);
    std::fprintf(stderr, "compacter: error: cannot run %s: %s\n", program, std::strerror(errno));
    return 127;
  }
  const std::string dir = directory_of_this_program();
  // Beside the launcher in a build tree; where cmake --install put it otherwise.
  const std::string candidates[] = {dir + "/compacter-core",
                                    dir + "/" COMPACTER_CORE_FROM_BIN "/compacter-core"};
  for (const std::string& core : candidates) {
    if (!executable(core)) continue;
    execv(core.c_str(), argv);
    std::fprintf(stderr, "compacter: error: cannot run %s: %s\n", core.c_str(),
                 std::strerror(errno));
    return 127;
  }
  std::fprintf(stderr,
               "compacter: error: the program compacter-core is not beside %s/compacter nor in "
               "%s/" COMPACTER_CORE_FROM_BIN " (an incomplete build or installation)\n",
               dir.c_str(), dir.c_str());
  return 127;
}

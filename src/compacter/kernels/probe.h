// One trial of an OpenBLAS core type, in a child process (README "Kernels at start-up"):
// OPENBLAS_CORETYPE is read once, when OpenBLAS loads, so each core type needs a fresh process.
// The child sets it, loads the BLAS library (dlopen), asks which core runs
// (openblas_get_corename) and how the library was built (openblas_get_config), runs the
// checks of gemm_check.h through sgemm_ and times a square sgemm on one thread, reporting each
// fact on a pipe as it learns it. A child that crashes, exits early or outlives the timeout
// (then killed) is a failed trial. Torch-free (the launcher compiles it); call it from a
// single-threaded process (the launcher), or where a forked child may load libraries.
#pragma once
#include <string>
#include <vector>

#include "compacter/kernels/choice.h"
#include "compacter/kernels/gemm_check.h"

namespace compacter::kernels {

struct ProbeSettings {
  std::string library = "libblas.so.3";  // what to dlopen: the name libtorch_cpu.so links
  double timeout_seconds = 5;            // per trial
  int64_t timed_size = 512;              // the timed sgemm: n x n by n x n
  double timed_seconds = 0.03;           // time it for about this long (best of the calls) ...
  int min_timed_calls = 3;               // ... and at least this often
  // The linear layers' comparison (run_linear_trial).
  std::string onednn_library = "libdnnl.so.2";  // what libtorch_cpu links
  int64_t linear_rows = 2048;                   // tokens of the timed products (batch 16 x 128)
  int64_t linear_width = 512;                   // d_model (t5-small)
  int64_t linear_inner = 2048;                  // d_ff
  int linear_rounds = 3;             // interleaved rounds; the best time of each product and kernel
  double linear_budget_seconds = 1;  // no further round once the rounds took this long
  double linear_timeout_seconds = 30;
};

struct ProbeReport {
  Trial trial;                     // judge() not yet applied
  bool loaded = false;             // the library loaded
  bool openblas = false;           // it has openblas_get_corename
  std::string config;              // openblas_get_config()
  std::vector<std::string> files;  // the files the library's symbols came from
};

// Runs one trial: requested "" for the library's default, else a core type name.
ProbeReport run_trial(const std::string& requested, const std::vector<GemmCase>& checks,
                      const ProbeSettings& settings);

// The fp32 linear layers' kernels compared in one child process (choice.h, LinearTrial): with
// OPENBLAS_CORETYPE = core ("" the default) and `threads` threads, oneDNN's dnnl_sgemm runs the
// checks, then OpenBLAS's sgemm_ and dnnl_sgemm time the four products of a T5 feed-forward
// layer (x W_i^T and h W_o^T forward, G W_i and G W_o backward; settings.linear_*), in
// interleaved rounds, the best time of each; the rate is their FLOPs over the sum of those times.
struct LinearReport {
  LinearTrial trial;
  std::vector<std::string> files;  // the BLAS's and oneDNN's library files
};
LinearReport run_linear_trial(const std::string& core, int threads,
                              const std::vector<GemmCase>& checks, const ProbeSettings& settings);

}  // namespace compacter::kernels

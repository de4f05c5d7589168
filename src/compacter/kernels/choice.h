// The decision among trial kernels (README "Kernels at start-up"; issue 16, point 1): what a
// trial process reported about one OpenBLAS core type, whether to trust it, which core to keep,
// and the verdict handed to the program and kept in the per-machine cache. Pure functions of
// their arguments except library_files_unchanged() and describe_library_file() (stat).
// Torch-free (the launcher compiles it).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compacter/kernels/cpu.h"

namespace compacter::kernels {

// One trial of a core type: what a probe process reported about it.
struct Trial {
  std::string requested;    // the OPENBLAS_CORETYPE asked for; "" for the library's default
  std::string ran;          // openblas_get_corename() in that process ("" when it never said)
  std::string failure;      // "" when it completed; else why not ("crashed (signal 4)", ...)
  double error_ratio = -1;  // the largest gemm_error_ratio over the checks; -1 when unchecked
  double gflops = 0;        // the best timed rate (one thread); 0 when untimed
};
// Adds to trial.failure what its report shows: another core ran than the one asked for (this
// OpenBLAS does not know the name), no check ran, or a check exceeded kMaxErrorRatio.
void judge(Trial& trial);
// "" when the trial is correct, else its failure (judge() applied to a copy).
std::string trial_failure(const Trial& trial);

// The decision: the core type to set (OPENBLAS_CORETYPE; "" keeps the default), a one-line
// summary, and a warning to print once ("" when none).
struct Choice {
  std::string core;
  std::string summary;
  std::string warning;
};
// Among the correct trials, the fastest; a candidate must beat a correct default by min_gain
// (timings are noisy, and a forced type should earn its place). Ties go to the earlier
// candidate. When no candidate is correct, the default stays, with a warning.
Choice choose(const Trial& default_trial, const std::vector<Trial>& candidates,
              double min_gain = 1.10);

// How much faster OpenBLAS must be than oneDNN for the linear layers to stay on it: within that
// margin the trial is a tie, and ties go to oneDNN, whose layers keep W^T of a frozen weight
// (nn/linear_kernel.h). Measured in whole steps on the 2-core EPYC VM (t5-small Compacter++, fp32):
// 0.74 s per step on oneDNN against 0.83-0.96 s on OpenBLAS (bench/results/frozen-transposed-
// vm-20261206), while the trial put the two within 8% of each other, either way, over five
// trials; later a fresh trial kept OpenBLAS at 1.055x (320 against 303 GFLOP/s) and the step ran
// 0.77-0.84 s, against 0.67-0.71 s on oneDNN the same hour (bench/results/cpu-targets-vm-20261206e
// and -g). 15%: above the trial's noise.
constexpr double kLinearMinGain = 1.15;

// The fp32 linear layers' two kernels compared (issue 16, point 1: "fp32 and bf16 linear layers
// through oneDNN instead of OpenBLAS; use whichever is fastest and correct"): OpenBLAS's sgemm_
// with the chosen core and oneDNN's dnnl_sgemm, timed on a T5 feed-forward layer's products at the
// program's thread count (probe.h, run_linear_trial). bf16 is not timed here: under autocast the
// layers call oneDNN's bf16 GEMM (nn/bf16_linear.h) wherever it runs, unless kBf16LinearVariable
// says libtorch, whose own bf16 product also calls oneDNN (its matmul primitive) on AVX-512 CPUs.
struct LinearTrial {
  int threads = 0;
  std::string failure;             // "" when both kernels were timed; else why not
  double onednn_error_ratio = -1;  // gemm_error_ratio of oneDNN's checks; -1 when unchecked
  double blas_gflops = 0, onednn_gflops = 0;
};
// The kernel the fp32 linear layers use: "oneDNN" when its checks pass and OpenBLAS is not
// min_gain faster than it, else "OpenBLAS"; with a one-line summary.
struct LinearChoice {
  std::string kernel;
  std::string summary;
};
LinearChoice choose_linear(const LinearTrial& trial, double min_gain = kLinearMinGain);

// What the launcher decided, handed to the program (environment variable kStartupVariable,
// one JSON line) and kept in the cache.
struct Verdict {
  std::string mode;     // "auto" (decided at start-up), "default" (switched off), "user"
                        // (OPENBLAS_CORETYPE set by the user)
  std::string reason;   // what set the mode: "--kernels default", "COMPACTER_KERNELS=default", ...
  std::string source;   // "probed", "cached" or "" (nothing probed)
  std::string library;  // the BLAS library probed
  std::string blas;     // its openblas_get_config() ("" when not OpenBLAS or not probed)
  std::string default_core;  // its own choice of core type
  std::string core;          // OPENBLAS_CORETYPE set at start-up ("" none)
  std::string summary;
  std::string warning;
  std::vector<Trial> trials;  // the default's first
  int probe_threads = 1;      // the trials' BLAS threads
  // The fp32 linear layers' kernel ("" when not compared: the layers use OpenBLAS), why, and
  // the comparison (absent when none ran).
  std::string fp32_linear;
  std::string linear_summary;
  std::optional<LinearTrial> linear;
};
nlohmann::json verdict_to_json(const Verdict& v);
Verdict verdict_from_json(const nlohmann::json& j);  // throws nlohmann::json::exception

// The variables: the verdict the launcher hands on, and the user's switch.
constexpr const char* kStartupVariable = "COMPACTER_KERNELS_STARTUP";
constexpr const char* kModeVariable = "COMPACTER_KERNELS";
// The program's override of the fp32 linear layers' kernel: "openblas" or "onednn" (unset: the
// launcher's verdict). For comparing the two in one benchmark; read by compacter-core.
constexpr const char* kFp32LinearVariable = "COMPACTER_FP32_LINEAR";
// The kernel the fp32 linear layers should use in this process: from kFp32LinearVariable when set
// (nullopt for a value other than openblas / onednn: the caller reports it), else the verdict's
// choice ("OpenBLAS" when there is none).
std::optional<std::string> fp32_linear_kernel(const char* variable,
                                              const std::optional<Verdict>& verdict);
// The program's override of the product its linear layers use under bf16 autocast on the CPU, and
// a bf16 model's on few rows at inference: "onednn" (oneDNN's bf16 GEMM, nn/bf16_linear.h; the
// default) or "libtorch" (torch::linear). Read by compacter-core.
constexpr const char* kBf16LinearVariable = "COMPACTER_BF16_LINEAR";
// "oneDNN" or "libtorch" from kBf16LinearVariable ("oneDNN" when unset; nullopt for another value:
// the caller reports it).
std::optional<std::string> bf16_linear_kernel(const char* variable);
// The option, read by the launcher among the options before the command; compacter-core accepts
// it there too (tools/compacter/main.cpp) with this help.
constexpr const char* kOption = "--kernels";
constexpr const char* kOptionHelp =
    "auto: at start-up, when OpenBLAS's default kernels are below what the CPU supports, try the "
    "faster ones (checked, timed, cached per machine) and use the fastest correct one; default: "
    "leave OpenBLAS alone (also COMPACTER_KERNELS=default). Never overrides OPENBLAS_CORETYPE";

// COMPACTER_KERNELS or --kernels: "auto" (or unset, ""): decide at start-up (cached);
// "default": leave OpenBLAS alone; "probe" (the variable only): decide again now, rewriting
// the cache. nullopt for anything else.
enum class Mode { kAuto, kDefault, kProbe };
std::optional<Mode> parse_mode(const std::string& value);

// The cache: one file, kernels.json, holding a verdict per key. A key names the CPU (vendor,
// family, model, stepping, brand, flags), the BLAS library asked for and LD_LIBRARY_PATH (which
// can change the file the program loads); an entry also lists the BLAS files the probe loaded
// (path, resolved path, size, modification time), so that an update or a switched alternative
// (update-alternatives libblas.so.3) invalidates it.
struct LibraryFile {
  std::string path;  // as the dynamic loader found it
  std::string real;  // with every symbolic link resolved
  int64_t size = 0;
  int64_t mtime_ns = 0;
};
std::string cache_key(const CpuInfo& cpu, const std::string& library,
                      const std::string& ld_library_path);
// $XDG_CACHE_HOME/compacter, else $HOME/.cache/compacter ("" when neither is set; a relative
// XDG_CACHE_HOME is ignored, as the XDG Base Directory specification says).
std::string cache_folder(const char* xdg_cache_home, const char* home);
constexpr const char* kCacheFile = "kernels.json";
// The verdict under `key` in a cache file's text when the text is well-formed, of this format,
// and `files_ok` accepts the entry's library files; nullopt otherwise.
std::optional<Verdict> read_cache(const std::string& text, const std::string& key,
                                  bool (*files_ok)(const std::vector<LibraryFile>&));
// `text` (an existing cache file, or "" / anything malformed, which is dropped) with the entry
// for `key` set.
std::string cache_with(const std::string& text, const std::string& key,
                       const std::vector<LibraryFile>& files, const Verdict& verdict);
// True when every file still resolves to the same file with the same size and time.
bool library_files_unchanged(const std::vector<LibraryFile>& files);
// The record of a library file (realpath and stat); nullopt when it cannot be read.
std::optional<LibraryFile> describe_library_file(const std::string& path);

}  // namespace compacter::kernels

// Which matrix kernels this process runs, for `compacter bench`, `train`'s header line and
// results.json's machine section (README "Kernels at start-up"): the BLAS library and its core
// type as the loaded library says (openblas_get_config, openblas_get_corename), how that core
// came about (the launcher's verdict in COMPACTER_KERNELS_STARTUP, choice.h), threads, the CPU,
// and GEMM rates where measured. Reading it runs no GEMM: rates come from the launcher's probe
// (one thread) or from the caller (bench measures them).
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <utility>

#include "compacter/kernels/choice.h"

namespace compacter::kernels {

// What nn::bf16_onednn_products() says where the bf16 GEMM widens its operands to fp32 for want of
// bf16 instructions (nn/bf16_linear.h: AVX2-only CPUs); the kernels line then says that fp32 is
// the faster choice there.
inline constexpr const char kBf16Widened[] =
    "fp32 GEMM on operands widened from bf16 (no bf16 GEMM on this CPU)";

struct KernelsReport {
  std::string blas;          // openblas_get_config() ("" when the BLAS is not OpenBLAS)
  std::string core;          // the core type running ("" when unknown)
  std::string how;           // how it came about, a short phrase (see kernels_line)
  std::string detail;        // the launcher's summary ("" when it decided nothing)
  std::string default_core;  // OpenBLAS's own choice, when the launcher probed it
  int threads = 0;           // the caller's intra-op threads
  std::string cpu_model;
  std::optional<double> probe_gflops;  // the running core's fp32 rate in the probe, one thread
  std::optional<double> fp32_gflops;   // measured by the caller
  std::optional<double> bf16_gflops;   // measured by the caller
  // The alternative, linear layers through oneDNN (train/bench.h, measure_onednn_linear), on the
  // representative shape, and which is fastest per dtype among the correct ones ("OpenBLAS" or
  // "oneDNN" for fp32; "libtorch" (its own bf16 mm) or "oneDNN" (its bf16 GEMM, as the layers call
  // it) for bf16); measured by the caller.
  std::optional<double> onednn_fp32_gflops;
  std::optional<double> onednn_bf16_gflops;
  std::string fastest_fp32, fastest_bf16;
  // The kernel this process's fp32 linear layers use ("OpenBLAS" or "oneDNN") and why (the
  // verdict's choice in make_report; current_kernels also reads kFp32LinearVariable).
  std::string fp32_linear = "OpenBLAS";
  std::string fp32_linear_how = "not compared at start-up";
  // The product this process's linear layers use under bf16 autocast ("oneDNN": its bf16 GEMM,
  // nn/bf16_linear.h; "libtorch": torch::linear) and why; set by current_kernels ("" unknown).
  std::string bf16_linear;
  std::string bf16_linear_how;  // ends in kBf16Widened where the bf16 GEMM widens to fp32
  // The engine of int8 linear layers and the layers left fp32 (nn/int8_linear.h), set by the
  // inference bench when it runs int8 ("" otherwise).
  std::string int8_linear;
};

// The report from what the loaded BLAS says (`live_core`, `live_config`: "" when it says
// nothing), the launcher's verdict (nullopt when the program was not started by the launcher)
// and OPENBLAS_CORETYPE as this process sees it ("" unset). A pure function, for tests.
KernelsReport make_report(const std::string& live_core, const std::string& live_config,
                          const std::optional<Verdict>& verdict, const std::string& coretype_env,
                          int threads, const std::string& cpu_model);

// The report of this process: the loaded library's answers (dlsym), the variables, cpuid;
// `bf16_gemm_available`: whether the linear layers can call oneDNN's bf16 GEMM
// (nn::onednn_bf16_gemm_available()); `bf16_products`: which of oneDNN's bf16 products those layers
// take (nn::bf16_onednn_products()), added to bf16_linear_how when they use oneDNN.
KernelsReport current_kernels(int threads, bool bf16_gemm_available,
                              const std::string& bf16_products = "");

// The launcher's verdict handed to this process (kStartupVariable); nullopt without one.
std::optional<Verdict> startup_verdict();
// The fp32 linear layers' kernel for this process and why: kFp32LinearVariable when set (throws
// UsageError for a value other than openblas / onednn), else the verdict's choice.
std::pair<std::string, std::string> fp32_linear_for_this_process();

// The product the linear layers use under bf16 autocast in this process ("oneDNN" or
// "libtorch") and why: kBf16LinearVariable when set (throws UsageError for a value other than
// onednn / libtorch), else oneDNN's bf16 GEMM; libtorch's product when `gemm_available` is false
// (UsageError when the variable asked for oneDNN).
std::pair<std::string, std::string> bf16_linear_for_this_process(bool gemm_available);

// Every field, and "line": kernels_line().
nlohmann::json kernels_json(const KernelsReport& r);
// One line: "kernels: OpenBLAS SkylakeX (chosen at start-up; default Prescott), 2 threads".
std::string kernels_line(const KernelsReport& r);

}  // namespace compacter::kernels

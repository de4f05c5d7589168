// The kernels report: see report.h.
#include "compacter/kernels/report.h"

#include <dlfcn.h>

#include <cstdlib>
#include <iomanip>
#include <sstream>
#include <tuple>

#include "compacter/core/error.h"
#include "compacter/kernels/cpu.h"

namespace compacter::kernels {

namespace {

using Name = const char* (*)();

std::string ask(const char* symbol) {
  const auto f = reinterpret_cast<Name>(dlsym(RTLD_DEFAULT, symbol));
  const char* text = f ? f() : nullptr;
  return text ? text : "";
}

nlohmann::json optional_number(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json();
}

// "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..." -> "OpenBLAS 0.3.21".
std::string short_blas(const std::string& config) {
  std::istringstream in(config);
  std::string name, version;
  in >> name >> version;
  return name.empty() ? "" : version.empty() ? name : name + " " + version;
}

// Why the linear layers use the verdict's kernel (kFp32LinearVariable aside).
std::string linear_how(const std::optional<Verdict>& verdict) {
  if (verdict && !verdict->fp32_linear.empty())
    return cat("chosen at start-up: ", verdict->linear_summary);
  return "not compared at start-up";
}

}  // namespace

KernelsReport make_report(const std::string& live_core, const std::string& live_config,
                          const std::optional<Verdict>& verdict, const std::string& coretype_env,
                          int threads, const std::string& cpu_model) {
  KernelsReport r;
  r.threads = threads;
  r.cpu_model = cpu_model;
  r.blas = live_config.empty() && verdict ? verdict->blas : live_config;
  r.core = live_core;
  if (!verdict) {
    r.how = coretype_env.empty() ? "OpenBLAS's default; not checked (started without the launcher)"
                                 : "set by OPENBLAS_CORETYPE";
    return r;
  }
  const Verdict& v = *verdict;
  r.detail = v.summary;
  if (!v.fp32_linear.empty()) {
    r.fp32_linear = v.fp32_linear;
    r.fp32_linear_how = linear_how(verdict);
  }
  r.default_core = v.default_core;
  if (r.core.empty()) r.core = !v.core.empty() ? v.core : v.default_core;
  if (v.mode == "user")
    r.how = "set by OPENBLAS_CORETYPE";
  else if (v.mode == "default")
    r.how = cat("OpenBLAS's default; start-up choice switched off by ", v.reason);
  else if (!v.core.empty())
    r.how = cat("chosen at start-up; default ", v.default_core.empty() ? "?" : v.default_core);
  else if (!v.default_core.empty())
    r.how = "OpenBLAS's default, checked at start-up";
  else
    r.how = "not OpenBLAS";
  for (const Trial& t : v.trials)
    if (trial_failure(t).empty() && same_core(t.ran, r.core)) r.probe_gflops = t.gflops;
  return r;
}

std::optional<Verdict> startup_verdict() {
  if (const char* text = std::getenv(kStartupVariable)) {
    try {
      return verdict_from_json(nlohmann::json::parse(text));
    } catch (const nlohmann::json::exception&) {
      // not the launcher's: reported as without it
    }
  }
  return std::nullopt;
}

std::pair<std::string, std::string> fp32_linear_for_this_process() {
  const char* variable = std::getenv(kFp32LinearVariable);
  const std::optional<Verdict> verdict = startup_verdict();
  const std::optional<std::string> kernel = fp32_linear_kernel(variable, verdict);
  check_usage(kernel.has_value(), kFp32LinearVariable, "=", variable ? variable : "",
              ": expected openblas or onednn");
  return {*kernel, variable ? cat("set by ", kFp32LinearVariable) : linear_how(verdict)};
}

std::pair<std::string, std::string> bf16_linear_for_this_process(bool gemm_available) {
  const char* variable = std::getenv(kBf16LinearVariable);
  const std::optional<std::string> kernel = bf16_linear_kernel(variable);
  check_usage(kernel.has_value(), kBf16LinearVariable, "=", variable ? variable : "",
              ": expected onednn or libtorch");
  if (variable) {
    check_usage(*kernel != "oneDNN" || gemm_available, kBf16LinearVariable,
                "=onednn, but oneDNN's dnnl_gemm_bf16bf16f32 is not in this process");
    return {*kernel, cat("set by ", kBf16LinearVariable)};
  }
  if (!gemm_available) return {"libtorch", "oneDNN's dnnl_gemm_bf16bf16f32 is not in this process"};
  return {"oneDNN", "the default"};
}

KernelsReport current_kernels(int threads, bool bf16_gemm_available,
                              const std::string& bf16_products) {
  const std::optional<Verdict> verdict = startup_verdict();
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  KernelsReport r = make_report(ask("openblas_get_corename"), ask("openblas_get_config"), verdict,
                                coretype ? coretype : "", threads, detect_cpu().model_name);
  try {
    std::tie(r.fp32_linear, r.fp32_linear_how) = fp32_linear_for_this_process();
    std::tie(r.bf16_linear, r.bf16_linear_how) = bf16_linear_for_this_process(bf16_gemm_available);
    if (r.bf16_linear == "oneDNN" && !bf16_products.empty())
      r.bf16_linear_how += "; " + bf16_products;
  } catch (const UsageError&) {
    // the program refused the variable at start-up; a report shows what the layers use
  }
  return r;
}

nlohmann::json kernels_json(const KernelsReport& r) {
  return {{"blas", r.blas},
          {"core", r.core},
          {"how", r.how},
          {"detail", r.detail},
          {"default_core", r.default_core},
          {"threads", r.threads},
          {"cpu_model", r.cpu_model},
          {"probe_gflops_one_thread", optional_number(r.probe_gflops)},
          {"fp32_gflops", optional_number(r.fp32_gflops)},
          {"bf16_gflops", optional_number(r.bf16_gflops)},
          {"onednn_fp32_gflops", optional_number(r.onednn_fp32_gflops)},
          {"onednn_bf16_gflops", optional_number(r.onednn_bf16_gflops)},
          {"fastest_fp32", r.fastest_fp32},
          {"fastest_bf16", r.fastest_bf16},
          {"fp32_linear", r.fp32_linear},
          {"fp32_linear_how", r.fp32_linear_how},
          {"bf16_linear", r.bf16_linear},
          {"bf16_linear_how", r.bf16_linear_how},
          {"int8_linear", r.int8_linear},
          {"line", kernels_line(r)}};
}

std::string kernels_line(const KernelsReport& r) {
  std::ostringstream out;
  const std::string blas = short_blas(r.blas);
  out << "kernels: " << (blas.empty() ? "BLAS (not OpenBLAS)" : blas);
  if (!r.core.empty()) out << " " << r.core;
  out << " (" << r.how << "), " << r.threads << (r.threads == 1 ? " thread" : " threads");
  out << "; fp32 linear layers: " << r.fp32_linear;
  if (!r.bf16_linear.empty()) {
    out << "; bf16 linear layers: " << r.bf16_linear;  // autocast, a bf16 model's few rows
    if (r.bf16_linear_how.find(kBf16Widened) != std::string::npos)
      out << " (widened to fp32: this CPU has no bf16 GEMM, fp32 runs faster)";
  }
  if (!r.int8_linear.empty()) out << "; int8 linear layers: " << r.int8_linear;
  out << std::fixed << std::setprecision(1);
  if (r.fp32_gflops) out << "; fp32 GEMM " << *r.fp32_gflops << " GFLOP/s";
  if (r.bf16_gflops) out << "; bf16 GEMM " << *r.bf16_gflops << " GFLOP/s";
  if (r.onednn_fp32_gflops && r.onednn_bf16_gflops)
    out << "; oneDNN linear fp32 " << *r.onednn_fp32_gflops << ", bf16 " << *r.onednn_bf16_gflops
        << " GFLOP/s";
  if (!r.fastest_fp32.empty() && !r.fastest_bf16.empty())
    out << "; fastest: fp32 " << r.fastest_fp32 << ", bf16 " << r.fastest_bf16;
  if (!r.fp32_gflops && r.probe_gflops)
    out << "; fp32 GEMM " << *r.probe_gflops << " GFLOP/s on one thread at start-up";
  return out.str();
}

}  // namespace compacter::kernels

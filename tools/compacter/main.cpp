// compacter: parameter-efficient fine-tuning of T5 (Compacter and the baselines of the paper).
// main() is the only place that turns errors into exit codes:
//   0 success, 1 a runtime error (bad file, bad data, ...), 2 bad command-line usage (CLI11's
//   parse errors and compacter::UsageError), 130 stopped by Ctrl-C at a checkpoint.
#include <torch/torch.h>

#include <cstdlib>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "compacter/core/error.h"
#include "compacter/core/interrupt.h"
#include "compacter/kernels/choice.h"
#include "compacter/kernels/report.h"
#include "compacter/nn/bf16_linear.h"
#include "compacter/nn/linear_kernel.h"
#include "compacter/nn/parallel.h"
#include "deprecated_flags.h"

int main(int argc, char** argv) {
  CLI::App app{"compacter " COMPACTER_VERSION
               ": parameter-efficient fine-tuning of T5 (Compacter, Compacter++, adapters, ...)",
               "compacter"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("compacter ") + COMPACTER_VERSION);
  // Acted on by the launcher (tools/launcher) before this program loaded OpenBLAS; the verdict is
  // in COMPACTER_KERNELS_STARTUP (compacter/kernels/report.h).
  std::string kernels = "auto";
  app.add_option(compacter::kernels::kOption, kernels, compacter::kernels::kOptionHelp)
      ->check(CLI::IsMember({"auto", "default"}))
      ->capture_default_str();
  // Every core unless OMP_NUM_THREADS says otherwise (libtorch 1.13's default may be fewer).
  compacter::nn::default_to_every_core();
  compacter::cli::add_inspect_command(app);
  compacter::cli::add_tokenize_commands(app);
  compacter::cli::add_forward_command(app);
  compacter::cli::add_generate_command(app);
  compacter::cli::add_init_model_command(app);
  compacter::cli::add_params_command(app);
  compacter::cli::add_methods_command(app);
  compacter::cli::add_train_command(app);
  compacter::cli::add_eval_command(app);
  compacter::cli::add_predict_command(app);
  compacter::cli::add_serve_command(app);
  compacter::cli::add_merge_command(app);
  compacter::cli::add_convert_command(app);
  compacter::cli::add_interop_commands(app);
  compacter::cli::add_wordnet_command(app);
  compacter::cli::add_pretrain_command(app);
  compacter::cli::add_report_command(app);
  compacter::cli::add_bench_commands(app);
  compacter::cli::add_tasks_commands(app);
  compacter::cli::add_score_command(app);
  compacter::cli::invocation() = compacter::cli::shell_quoted(argc, argv);
  try {
    // The fp32 linear layers' kernel the launcher chose (or COMPACTER_FP32_LINEAR).
    const bool forced = std::getenv(compacter::kernels::kFp32LinearVariable) != nullptr;
    bool onednn = compacter::kernels::fp32_linear_for_this_process().first == "oneDNN";
    if (onednn && !compacter::nn::onednn_sgemm_available()) {
      compacter::check_usage(!forced, compacter::kernels::kFp32LinearVariable,
                             "=onednn, but oneDNN's dnnl_sgemm is not in this process");
      std::cerr << "compacter: warning: the start-up choice of oneDNN for the linear layers "
                   "cannot be followed (dnnl_sgemm is not in this process); using OpenBLAS\n";
      onednn = false;
    }
    compacter::nn::set_fp32_linear_kernel(onednn ? compacter::nn::Fp32LinearKernel::kOnednn
                                                 : compacter::nn::Fp32LinearKernel::kBlas);
    // The product under bf16 autocast and a bf16 model's on few rows (COMPACTER_BF16_LINEAR;
    // oneDNN's bf16 GEMM by default).
    const bool bf16_onednn = compacter::kernels::bf16_linear_for_this_process(
                                 compacter::nn::onednn_bf16_gemm_available())
                                 .first == "oneDNN";
    compacter::nn::set_bf16_linear_kernel(bf16_onednn ? compacter::nn::Bf16LinearKernel::kOnednn
                                                      : compacter::nn::Bf16LinearKernel::kLibtorch);
    std::vector<std::string> args = compacter::cli::replace_deprecated_flags(argc, argv, std::cerr);
    compacter::cli::arguments() = args;
    std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last to first
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints the help, the version or the error
    if (dynamic_cast<const CLI::ExtrasError*>(&e))
      std::cerr << "(a value with spaces, such as a --text, needs quotes)\n";
    return code == 0 ? 0 : 2;
  } catch (const compacter::Interrupted& e) {
    std::cerr << "compacter: " << e.what() << "\n";
    return 130;
  } catch (const compacter::UsageError& e) {
    std::cerr << "compacter: error: " << e.what() << "\n";
    return 2;
  } catch (const compacter::Error& e) {
    std::cerr << "compacter: error: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "compacter: error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "compacter: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

// The paper's Table 3 efficiency report (`compacter bench`): for each method, seconds per
// training step, examples per second, peak memory, their differences to full fine-tuning,
// trainable parameters and the step's achieved GFLOP/s as a share of the machine's measured
// matrix-multiply rate, on random tokens. Each method runs in its own process (this program
// re-executed as `<program> bench-worker --job JSON`, which prints one JSON line), so each peak
// memory is that method's. The step is train/step.h's, the one `train` runs.
#pragma once
#include <torch/types.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "compacter/core/options.h"
#include "compacter/core/progress.h"
#include "compacter/io/t5_config.h"
#include "compacter/kernels/report.h"
#include "compacter/peft/methods.h"

namespace compacter::train {

// X(type, name, default, help).
#define COMPACTER_TABLE3_OPTIONS(X)                                                      \
  X(std::string, model_config, "t5-small",                                               \
    "T5 shape: a built-in name or a folder / config.json (random weights)")              \
  X(int64_t, batch_size, 16, "examples per step")                                        \
  X(int64_t, source_len, 128, "source tokens per example")                               \
  X(int64_t, target_len, 3, "target tokens per example (the last is eos)")               \
  X(int64_t, max_steps, 5, "timed training steps per method")                            \
  X(int64_t, warmup, 1, "untimed training steps before them")                            \
  X(std::string, device, "cpu", "cpu, cuda or cuda:N")                                   \
  X(std::string, dtype, "fp32",                                                          \
    "fp32, bf16 (every tensor bf16) or autocast-bf16 (fp32 weights and optimizer, bf16 " \
    "matrix products)")                                                                  \
  X(uint64_t, seed, 0, "seed of the tokens and dropout (and of the methods' init)")

struct Table3Settings {
  COMPACTER_OPTIONS_BODY(COMPACTER_TABLE3_OPTIONS)
  void validate() const;  // UsageError naming the first bad setting
};

// "all" or a comma list of known methods, each once (UsageError otherwise).
std::vector<std::string> parse_method_list(const std::string& text);

// One method: its settings, resolved options and init seed, and where to write a profile ("":
// none). The job a bench worker runs.
struct MethodJob {
  Table3Settings settings;
  std::string method;
  peft::PeftOptions options;
  uint64_t init_seed = 0;
  std::string profile_path;
};
nlohmann::json job_to_json(const MethodJob& job);
MethodJob job_from_json(const nlohmann::json& j);

// Runs one method's timed steps in this process and returns its row (what a worker prints).
nlohmann::json benchmark_method(const MethodJob& job, ProgressSink& progress = no_progress());

// The whole report: the GEMM section, then every job in its own worker process of `program`
// (which must understand `bench-worker --job JSON`), then the differences to full fine-tuning.
// A method that fails gets a row with "error"; the document's "failed" lists them.
nlohmann::json run_table3(const std::vector<MethodJob>& jobs, const std::string& program,
                          ProgressSink& progress = no_progress());

// The GEMM rates of a report's "gemm" section in `dtype` (best of gemm_repeats() runs): the
// representative shape, rows x d_model by d_model x d_ff, and a square one (1024^3, 2048^3 on
// CUDA); "best_gflops" is the higher.
nlohmann::json measure_gemm_rates(const T5Config& config, int64_t rows, torch::Device device,
                                  torch::ScalarType dtype);

// On the CPU: the kernels' report gets the fp32 and bf16 GEMM rates of `gemm` (bf16 measured
// when missing), and the linear layers' own oneDNN products in fp32 and bf16 on the
// representative shape (rows x d_ff x d_model; gemm["onednn_fp32"], gemm["onednn_bf16"]), with
// the fastest correct path per dtype (issue #8).
void add_cpu_kernel_rates(kernels::KernelsReport& kernels, nlohmann::json& gemm,
                          const T5Config& config, int64_t rows);
// The rate %GEMM is of ("the measured best GEMM rate", issue #8): the higher of torch::mm's in
// gemm[key] and, where add_cpu_kernel_rates measured it and found it correct, the linear layers'
// oneDNN product in `products` ("fp32" or "bf16"). Written into gemm[key] as "reference_gflops"
// and "reference_product" ("torch::mm" or "oneDNN linear"). Without bf16 instructions libtorch's
// bf16 torch::mm runs a scalar loop (4.6 GFLOP/s on a Zen 3), where the layers' product widens to
// fp32 (nn/bf16_linear.h): %GEMM of the former read 1,700%.
double gemm_reference(nlohmann::json& gemm, const std::string& key, const std::string& products);
int gemm_repeats();

// A report's "machine" section: threads, the environment variables that steer the kernels, the
// CPU, the kernels (with the rates the caller measured), the libtorch and compacter versions.
nlohmann::json machine_section(const kernels::KernelsReport& kernels);

// The report as the table `compacter bench` prints.
std::string format_table3(const nlohmann::json& report);

// One benchmark configuration run in a worker process (`program args`), its stderr passed to
// `progress` as status lines. `result` is the JSON object on its last stdout line when the
// worker succeeded and that object has `required_key`; otherwise `error` says
// "<what> failed (<exit status>): <last stderr line>" and a warning with the end of its stderr
// went to `progress`.
struct WorkerOutcome {
  nlohmann::json result;
  std::string error;  // empty when the worker succeeded
};
WorkerOutcome run_bench_worker(const std::string& program, const std::vector<std::string>& args,
                               const std::string& what, const std::string& required_key,
                               ProgressSink& progress);

}  // namespace compacter::train

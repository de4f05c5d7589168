// Measurements behind `compacter bench` (the paper's Table 3 efficiency report): the time and
// peak memory of one fine-tuning method's training steps on random tokens, and the machine's
// matrix-multiply rate. One training step is what train/loop.cpp does per optimizer step:
// forward with labels, backward, global-norm clipping (1.0), AdamW over the method's trainable
// tensors, zero_grad; dropout is on.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compacter/io/t5_config.h"
#include "compacter/peft/methods.h"
#include "compacter/train/flops.h"

namespace compacter::train {

// The events that mark one timed training step and one timed generation request in a profile's
// trace: bench/profile_summary.py splits the trace by them and reports per-step medians.
inline constexpr const char* kProfileStepEvent = "compacter::bench_step";
inline constexpr const char* kProfileRequestEvent = "compacter::bench_request";

struct StepBenchSettings {
  T5Config config;
  std::string method;
  peft::PeftOptions options;  // the method's resolved options
  int64_t batch = 16;
  int64_t source_len = 128;
  int64_t target_len = 3;  // labels end with eos
  int64_t steps = 5;       // timed
  int64_t warmup = 1;      // untimed, before the timed steps
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat32;
  bool bf16_autocast = false;  // fp32 weights, bf16 matrix products (nn/autocast.h)
  std::string profile_path;  // non-empty: a Chrome trace of the timed steps (libtorch's profiler),
                             // each step one kProfileStepEvent around its operators
  uint64_t seed = 0;         // the tokens and dropout
  uint64_t init_seed = 0;    // the method's init
  double learning_rate = 3e-4;
  double max_grad_norm = 1.0;
};

struct StepBenchResult {
  std::vector<double> step_seconds;  // the timed steps
  double mean_seconds = 0.0;
  double min_seconds = 0.0;
  double examples_per_second = 0.0;  // batch / mean_seconds
  int64_t peak_memory_bytes = -1;    // -1: not available
  std::string peak_memory_kind;      // "cpu_peak_rss" (VmHWM) | "cuda_peak_allocated" | ...
  int64_t trainable_parameters = 0;
  int64_t backbone_parameters = 0;  // the T5 tensors, each once
  double trainable_percent = 0.0;   // of the backbone (Table 1's %)
  int64_t encoder_length = 0;       // source_len, plus the prompt rows for prompt tuning
  ForwardFlops forward;
  bool weight_gradients = false;  // the FLOP rule's 3 x (true) or 2 x (false) forward
  double step_flops = 0.0;
  double last_loss = 0.0;
};

// Builds a randomly initialised T5 from settings.config, moves it to the device and dtype,
// attaches the method and runs warmup + steps training steps; `progress` (may be empty) gets one
// short line per step. Peak memory is this process's: run one method per process.
StepBenchResult benchmark_training_steps(const StepBenchSettings& settings,
                                         const std::function<void(const std::string&)>& progress);

// True when the method's backbone weight matrices receive gradients (full fine-tuning, SAID).
bool needs_backbone_weight_gradients(const std::string& method);

// Rate of torch::mm of an [m, k] by a [k, n] matrix: `warmup` untimed runs, then `repeats`
// timed ones (synchronised on CUDA).
struct GemmRate {
  int64_t m = 0, n = 0, k = 0;
  double best_gflops = 0.0;
  double median_gflops = 0.0;
};
GemmRate measure_gemm(int64_t m, int64_t n, int64_t k, torch::Device device,
                      torch::ScalarType dtype, int warmup = 2, int repeats = 5);

// The alternative to the BLAS (issue #8): the same product as a linear layer through oneDNN
// (libdnnl 2.6, which Debian's libtorch links): in fp32 the path the layers take when oneDNN is
// chosen (nn::onednn_linear, dnnl_sgemm); in bf16 the path the layers take under autocast
// (nn::bf16_linear, dnnl_gemm_bf16bf16f32, the product rounded to bf16), on bf16 operands; on
// the CPU. `correct`: the result is within the dtype's error bound of a double-precision product
// of the same (dtype-rounded) inputs: |y - y_ref| <= (k 2^-23 + u) (|a| |b|) element-wise, u =
// 2^-8 for a bf16 result, 0 for fp32.
struct OnednnRate {
  bool available = false;  // this process has oneDNN (fp32: dnnl_sgemm; bf16: its bf16 GEMM)
  double best_gflops = 0.0;
  double median_gflops = 0.0;
  bool correct = false;
  double worst_error_over_bound = 0.0;  // max |y - y_ref| / bound (<= 1 when correct)
};
OnednnRate measure_onednn_linear(int64_t m, int64_t n, int64_t k, torch::ScalarType dtype,
                                 int warmup = 2, int repeats = 5);

// Peak bytes allocated on a CUDA device by the caching allocator since the process started, or
// -1 where this build cannot read it (a libtorch without CUDA).
int64_t cuda_peak_allocated_bytes(torch::Device device);

// "model name" of the first processor in /proc/cpuinfo ("" when unknown).
std::string cpu_model_name();

}  // namespace compacter::train

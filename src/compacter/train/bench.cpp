// Training-step and GEMM measurements of `compacter bench`: see bench.h.
#include "compacter/train/bench.h"

#include <ATen/record_function.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <memory>
#include <sstream>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/nn/autocast.h"
#include "compacter/nn/bf16_linear.h"
#include "compacter/nn/linear_kernel.h"
#include "compacter/train/loop.h"
#include "compacter/train/step.h"

// Set by CMakeLists.txt only when libtorch was built with CUDA (the header alone is not enough:
// Debian's CPU-only libtorch ships it without the library behind it).
#if defined(COMPACTER_CUDA_ALLOCATOR_STATS) && __has_include(<c10/cuda/CUDACachingAllocator.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#define COMPACTER_HAVE_CUDA_PEAK 1
#endif

// libtorch's (legacy) autograd profiler, which writes a Chrome trace of every operator.
#if __has_include(<torch/csrc/autograd/profiler_legacy.h>)
#include <torch/csrc/autograd/profiler_legacy.h>
#define COMPACTER_HAVE_LEGACY_PROFILER 1
#endif

namespace compacter::train {

namespace {

using Clock = std::chrono::steady_clock;

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

}  // namespace

bool needs_backbone_weight_gradients(const std::string& method) {
  return peft::find_method(method).rewrites_backbone;
}

StepBenchResult benchmark_training_steps(const StepBenchSettings& s,
                                         const std::function<void(const std::string&)>& progress) {
  check(s.batch >= 1 && s.source_len >= 1 && s.target_len >= 1,
        "batch, source length and target length must be positive");
  check(s.steps >= 1 && s.warmup >= 0, "steps must be positive and warm-up steps not negative");
  check(s.config.vocab_size > 3, "the vocabulary needs more than 3 rows for random tokens");
  const peft::MethodInfo& info = peft::find_method(s.method);

  torch::manual_seed(s.seed);  // the tokens, then dropout
  nn::T5Model model(s.config);
  model->to(s.device, s.dtype);
  peft::attach(s.method, s.options, *model, s.init_seed);
  model->train();
  StepOptions so;
  so.max_grad_norm = s.max_grad_norm;
  so.bf16_autocast = s.bf16_autocast;
  TrainStep train_step(*model, so);

  const T5Config& c = s.config;
  torch::Tensor ids = torch::randint(3, c.vocab_size, {s.batch, s.source_len}, torch::kLong);
  torch::Tensor mask = torch::ones({s.batch, s.source_len}, torch::kLong);
  torch::Tensor labels = torch::randint(3, c.vocab_size, {s.batch, s.target_len}, torch::kLong);
  labels.select(1, s.target_len - 1).fill_(c.eos_token_id);
  ids = ids.to(s.device);
  mask = mask.to(s.device);
  labels = labels.to(s.device);

  StepBenchResult r;
  auto step = [&] {
    r.last_loss = train_step.accumulate(ids, mask, labels);
    train_step.finish(s.learning_rate);
    synchronize(s.device);
  };
  for (int64_t i = 0; i < s.warmup; ++i) {
    if (progress) progress(cat("warm-up ", i + 1, "/", s.warmup));
    step();
  }
#ifdef COMPACTER_HAVE_LEGACY_PROFILER
  std::ostringstream trace;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
  if (!s.profile_path.empty())
    profile = std::make_unique<torch::autograd::profiler::RecordProfile>(trace);
#else
  check(s.profile_path.empty(), "profiling needs libtorch's legacy autograd profiler, which ",
        "this libtorch lacks");
#endif
  for (int64_t i = 0; i < s.steps; ++i) {
    const auto t0 = Clock::now();
    {
      RECORD_FUNCTION(kProfileStepEvent, c10::ArrayRef<const c10::IValue>{});
      step();
    }
    r.step_seconds.push_back(seconds_since(t0));
    if (progress)
      progress(cat("step ", i + 1, "/", s.steps, ": ", std::fixed, std::setprecision(3),
                   r.step_seconds.back(), " s"));
  }
#ifdef COMPACTER_HAVE_LEGACY_PROFILER
  if (profile) {
    profile.reset();  // writes the trace
    write_text_atomically(s.profile_path, trace.str());
  }
#endif
  double sum = 0.0;
  for (double t : r.step_seconds) sum += t;
  r.mean_seconds = sum / static_cast<double>(r.step_seconds.size());
  r.min_seconds = *std::min_element(r.step_seconds.begin(), r.step_seconds.end());
  r.examples_per_second = static_cast<double>(s.batch) / r.mean_seconds;
  if (s.device.is_cuda()) {
    r.peak_memory_bytes = cuda_peak_allocated_bytes(s.device);
    r.peak_memory_kind = r.peak_memory_bytes >= 0 ? "cuda_peak_allocated" : "unavailable";
  } else {
    r.peak_memory_bytes = peak_rss_bytes();
    r.peak_memory_kind = "cpu_peak_rss";
  }
  const peft::ParameterBreakdown counts = peft::parameter_breakdown(*model, s.method);
  r.trainable_parameters = counts.trainable;
  r.backbone_parameters = counts.backbone;
  r.trainable_percent = counts.percent();
  r.encoder_length = s.source_len + info.encoder_positions(s.options);
  r.forward = t5_forward_flops(c, s.batch, r.encoder_length, s.target_len);
  r.weight_gradients = needs_backbone_weight_gradients(s.method);
  r.step_flops = training_step_flops(r.forward, r.weight_gradients);
  return r;
}

GemmRate measure_gemm(int64_t m, int64_t n, int64_t k, torch::Device device,
                      torch::ScalarType dtype, int warmup, int repeats) {
  check(m > 0 && n > 0 && k > 0 && repeats > 0, "GEMM shape and repeats must be positive");
  torch::NoGradGuard no_grad;
  const auto options = torch::TensorOptions().device(device).dtype(dtype);
  torch::Tensor a = torch::randn({m, k}, options), b = torch::randn({k, n}, options);
  for (int i = 0; i < warmup; ++i) torch::mm(a, b);
  synchronize(device);
  std::vector<double> seconds;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = Clock::now();
    torch::Tensor out = torch::mm(a, b);
    synchronize(device);
    seconds.push_back(seconds_since(t0));
  }
  std::sort(seconds.begin(), seconds.end());
  const double flops =
      2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  GemmRate g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.best_gflops = flops / seconds.front() / 1e9;
  g.median_gflops = flops / seconds[seconds.size() / 2] / 1e9;
  return g;
}

OnednnRate measure_onednn_linear(int64_t m, int64_t n, int64_t k, torch::ScalarType dtype,
                                 int warmup, int repeats) {
  check(m > 0 && n > 0 && k > 0 && repeats > 0, "GEMM shape and repeats must be positive");
  check(dtype == torch::kFloat32 || dtype == torch::kBFloat16, "oneDNN linear: fp32 or bf16, got ",
        dtype);
  OnednnRate r;
  const bool fp32 = dtype == torch::kFloat32;
  r.available = fp32 ? nn::onednn_sgemm_available() : nn::onednn_bf16_gemm_available();
  if (!r.available) return r;
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({m, k}).to(dtype), w = torch::randn({n, k}).to(dtype);
  // The paths the linear layers take: fp32 when oneDNN is chosen (nn/linear_kernel.h); bf16 under
  // autocast (nn/bf16_linear.h), here on operands already in bf16, as a kept frozen weight is.
  nn::AutocastScope autocast(torch::kCPU, !fp32);
  auto linear = [&] { return fp32 ? nn::onednn_linear(x, w, {}) : nn::bf16_linear(x, w, {}); };
  // Correctness first: every element of y against its bound.
  {
    const torch::Tensor y = linear().to(torch::kDouble);
    const torch::Tensor xd = x.to(torch::kDouble), wd = w.to(torch::kDouble);
    const torch::Tensor ref = torch::mm(xd, wd.t());
    const double u = dtype == torch::kBFloat16 ? std::ldexp(1.0, -8) : 0.0;
    const torch::Tensor bound =
        (static_cast<double>(k) * std::ldexp(1.0, -23) + u) * torch::mm(xd.abs(), wd.abs().t()) +
        1e-30;
    r.worst_error_over_bound = ((y - ref).abs() / bound).max().item<double>();
    r.correct = r.worst_error_over_bound <= 1.0;
  }
  for (int i = 0; i < warmup; ++i) linear();
  std::vector<double> seconds;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = Clock::now();
    torch::Tensor out = linear();
    seconds.push_back(seconds_since(t0));
  }
  std::sort(seconds.begin(), seconds.end());
  const double flops =
      2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  r.best_gflops = flops / seconds.front() / 1e9;
  r.median_gflops = flops / seconds[seconds.size() / 2] / 1e9;
  return r;
}

int64_t cuda_peak_allocated_bytes(torch::Device device) {
#ifdef COMPACTER_HAVE_CUDA_PEAK
  const auto index = static_cast<c10::DeviceIndex>(device.has_index() ? device.index() : 0);
  // allocated_bytes[0]: the aggregate over the small and large pools.
  return static_cast<int64_t>(
      c10::cuda::CUDACachingAllocator::getDeviceStats(index).allocated_bytes[0].peak);
#else
  (void)device;
  return -1;
#endif
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const auto start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "" : line.substr(start);
  }
  return "";
}

}  // namespace compacter::train

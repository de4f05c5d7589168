// T5's RMS layer norm, forward and backward, on t5-small's training shape (batch 16, source 128,
// d_model 512, fp32): the fused kernel (nn::rms_norm) against the composite operators it replaced
// (x * rsqrt(sum(x^2) / n + eps), then times the weight), in one process, so that the two are
// compared on the same machine state. `trained` says whether the weight takes a gradient (full
// fine-tuning, or layer norms unfrozen) or not (Compacter++: only the input's gradient).
//
//   bench_rms_norm [--benchmark_format=json]
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "compacter/nn/parallel.h"
#include "compacter/nn/rms_norm.h"

namespace {

constexpr int64_t kBatch = 16, kLen = 128, kModel = 512;
constexpr double kEps = 1e-6;

void rms_norm(benchmark::State& state) {
  const bool fused = state.range(0) == 1;
  const bool trained = state.range(1) == 1;
  // Every core unless OMP_NUM_THREADS says otherwise, as the program does: libtorch's default
  // here was one thread (0.52 against 0.26 ms for the fused forward and backward on the 2-core VM).
  compacter::nn::default_to_every_core();
  torch::manual_seed(0);
  torch::Tensor x = torch::randn({kBatch, kLen, kModel}).requires_grad_(true);
  torch::Tensor g = (torch::rand({kModel}) + 0.5).requires_grad_(trained);
  torch::Tensor dy = torch::randn({kBatch, kLen, kModel});
  for (auto _ : state) {
    torch::Tensor y =
        fused ? compacter::nn::rms_norm(x, g, kEps) : compacter::nn::rms_norm_composite(x, g, kEps);
    y.backward(dy);
    x.mutable_grad() = torch::Tensor();
    if (trained) g.mutable_grad() = torch::Tensor();
  }
  state.SetLabel(fused ? "fused" : "composite");
}

BENCHMARK(rms_norm)
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->ArgNames({"fused", "trained"})
    ->Unit(benchmark::kMillisecond)
    ->Repetitions(3)
    ->ReportAggregatesOnly(false);

}  // namespace

BENCHMARK_MAIN();

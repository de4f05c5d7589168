// The fp32 linear layer's forward product y = x W^T on oneDNN's sgemm for few rows of x (decoding:
// one row per sequence and beam; training's decoder: batch x target rows), with cold operands (a
// 64 MiB buffer is written between iterations, untimed), three ways in one process:
//   - layer: nn::onednn_linear without gradients, the path the layers take (nn/linear_kernel.cpp:
//     from 16 to 128 rows, and from 5 for a weight of 8M elements or more, computed as
//     (W x^T)^T, then transposed);
//   - x_Wt: sgemm('N', 'T') on x and W, the product as written;
//   - W_xt: sgemm('N', 'T') on W and x, the transposed product alone (no transposition).
// Shapes: t5-base's and t5-small's vocabulary projections (N 32128, K 768 and 512), t5-small's wi
// (2048, 512), wo (512, 2048) and attention projections (512, 512). Threads: every core, as the
// program uses; run it as the program runs (GOMP_SPINCOUNT=10000, TCMalloc preloaded:
// bench/results/skinny-linear-vm-20261206).
//
//   bench_linear_rows [--benchmark_format=json]
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <vector>

#include "compacter/nn/linear_kernel.h"
#include "compacter/nn/parallel.h"

namespace {

void evict(std::vector<float>& buffer) {
  for (size_t i = 0; i < buffer.size(); i += 16) buffer[i] += 1.0f;
  benchmark::DoNotOptimize(buffer.data());
}

void linear_rows(benchmark::State& state) {
  namespace nn = compacter::nn;
  const int64_t way = state.range(0), m = state.range(1), n = state.range(2), k = state.range(3);
  if (!nn::onednn_sgemm_available()) {
    state.SkipWithError("no dnnl_sgemm in this process");
    return;
  }
  // Every core unless OMP_NUM_THREADS says otherwise, as the program does.
  compacter::nn::default_to_every_core();
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({m, k}), w = torch::randn({n, k});
  torch::Tensor y = torch::empty({m, n});
  std::vector<float> buffer(static_cast<size_t>(16) << 20);
  torch::NoGradGuard no_grad;
  auto product = [&] {
    if (way == 0) {
      y = torch::Tensor();  // freed first, so that the allocator hands the same memory back
      y = nn::onednn_linear(x, w, {});
    } else if (way == 1) {
      nn::onednn_sgemm('N', 'T', m, n, k, x.data_ptr<float>(), k, w.data_ptr<float>(), k,
                       y.data_ptr<float>(), n);
    } else {
      nn::onednn_sgemm('N', 'T', n, m, k, w.data_ptr<float>(), k, x.data_ptr<float>(), k,
                       y.data_ptr<float>(), m);
    }
  };
  product();  // untimed: y's pages (263 MB at 2048 rows of the vocabulary) faulted in once
  for (auto _ : state) {
    state.PauseTiming();
    evict(buffer);
    state.ResumeTiming();
    product();
    benchmark::DoNotOptimize(y.data_ptr<float>());
  }
  state.SetLabel(way == 0 ? "layer" : way == 1 ? "x_Wt" : "W_xt");
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(m * n * k) / 1e9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void shapes(benchmark::internal::Benchmark* b) {
  for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{
           {32128, 768}, {32128, 512}, {2048, 512}, {512, 2048}, {512, 512}})
    for (int64_t m : {1, 4, 5, 8, 12, 16, 32, 64, 128, 192, 2048})
      for (int64_t way : {0, 1, 2}) b->Args({way, m, n, k});
  b->ArgNames({"way", "rows", "N", "K"})->Unit(benchmark::kMillisecond)->MinTime(0.2);
}

BENCHMARK(linear_rows)->Apply(shapes);

}  // namespace

BENCHMARK_MAIN();

// An int8 linear layer's product y = x W^T on few rows (decoding), three ways in one process, the
// inputs cycling through 64 of different ranges:
//   - layer: nn::Int8Weight::forward as the int8 layers run it (nn/int8_linear.h: the library's
//     AVX-512 VNNI kernel, nn/int8_rows.h, each row over its own range, where the CPU has it);
//   - onednn: nn::Int8Weight on libtorch's quantised oneDNN engine (Int8Engine::kOneDnn), the
//     engine of CPUs without VNNI: up to 512 rows the input mapped onto [0, 255] over the whole
//     input's range, above PyTorch's own quantisation parameters. (Before 2026-12-07's review this
//     bench called oneDNN itself, on the mapped input at every row count:
//     bench/results/int8-rows-vm-20261207*.json.)
//   - fp32: torch::linear on the fp32 weight.
// Shapes: t5-small's attention projections (512, 512), wi (2048, 512) and wo (512, 2048). Threads:
// every core, as the program uses.
//
//   bench_int8_rows [--benchmark_format=json]
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "compacter/nn/int8_linear.h"
#include "compacter/nn/parallel.h"

namespace {

enum Way { kLayer, kOnednn, kFp32 };

void int8_rows(benchmark::State& state, Way way) {
  const int64_t out = state.range(0), in = state.range(1), rows = state.range(2);
  compacter::nn::default_to_every_core();
  if (!compacter::nn::int8_available()) {
    state.SkipWithError("no int8 engine on this machine");
    return;
  }
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const torch::Tensor w = torch::randn({out, in}) * 0.05;
  const compacter::nn::Int8Weight layer(w);
  std::unique_ptr<compacter::nn::Int8Weight> onednn;
  if (way == kOnednn) {
    if (!compacter::nn::onednn_int8_available()) {
      state.SkipWithError("no oneDNN quantised engine in this libtorch");
      return;
    }
    onednn = std::make_unique<compacter::nn::Int8Weight>(w, compacter::nn::Int8Engine::kOneDnn);
  }
  std::vector<torch::Tensor> inputs;
  for (int i = 0; i < 64; ++i) inputs.push_back(torch::randn({rows, in}) * (0.5 + 0.1 * i));
  size_t next = 0;
  for (auto _ : state) {
    const torch::Tensor& x = inputs[next++ % inputs.size()];
    torch::Tensor y;
    if (way == kLayer) {
      y = layer.forward(x);
    } else if (way == kOnednn) {
      y = onednn->forward(x);
    } else {
      y = torch::linear(x, w);
    }
    benchmark::DoNotOptimize(y.data_ptr<float>());
  }
  state.SetItemsProcessed(state.iterations() * rows);
}

void shapes(benchmark::internal::Benchmark* b) {
  for (const auto& [out, in] :
       std::vector<std::pair<int64_t, int64_t>>{{512, 512}, {2048, 512}, {512, 2048}})
    for (int64_t rows : {1, 8, 32, 128, 512, 2048}) b->Args({out, in, rows});
  b->ArgNames({"out", "in", "rows"})->UseRealTime();
}

BENCHMARK_CAPTURE(int8_rows, layer, kLayer)->Apply(shapes);
BENCHMARK_CAPTURE(int8_rows, onednn, kOnednn)->Apply(shapes);
BENCHMARK_CAPTURE(int8_rows, fp32, kFp32)->Apply(shapes);

}  // namespace

BENCHMARK_MAIN();

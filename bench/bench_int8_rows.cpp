// An int8 linear layer's product y = x W^T on few rows (decoding), three ways in one process, the
// inputs cycling through 64 of different ranges:
//   - layer: nn::Int8Weight::forward, the path the int8 layers take (nn/int8_linear.h: the
//     library's AVX-512 VNNI kernel, nn/int8_rows.h, each row over its own range, where the CPU
//     has it);
//   - onednn: libtorch's quantised oneDNN linear on the input mapped onto [0, 255] over the whole
//     input's range, the path up to 512 rows took before the kernel (and take on a CPU without
//     VNNI);
//   - fp32: torch::linear on the fp32 weight.
// Shapes: t5-small's attention projections (512, 512), wi (2048, 512) and wo (512, 2048). Threads:
// every core, as the program uses.
//
//   bench_int8_rows [--benchmark_format=json]
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

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
    state.SkipWithError("no oneDNN quantised engine in this libtorch");
    return;
  }
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const torch::Tensor w = torch::randn({out, in}) * 0.05;
  const compacter::nn::Int8Weight layer(w);
  // The same quantised weight, prepacked for oneDNN directly.
  const torch::Tensor scales = layer.scales();
  const torch::Tensor q =
      at::quantize_per_channel(w, scales, torch::zeros({out}, torch::kLong), 0, torch::kQInt8);
  at::globalContext().setQEngine(at::QEngine::ONEDNN);
  static const auto prepack = c10::Dispatcher::singleton()
                                  .findSchemaOrThrow("quantized::linear_prepack", "")
                                  .typed<c10::intrusive_ptr<LinearPackedParamsBase>(
                                      at::Tensor, c10::optional<at::Tensor>)>();
  const auto params = prepack.call(q, c10::nullopt);
  const torch::Tensor row_sums =
      (q.int_repr().to(torch::kDouble).sum(1) * scales).to(torch::kFloat32);
  std::vector<torch::Tensor> inputs;
  for (int i = 0; i < 64; ++i) inputs.push_back(torch::randn({rows, in}) * (0.5 + 0.1 * i));
  size_t next = 0;
  for (auto _ : state) {
    const torch::Tensor& x = inputs[next++ % inputs.size()];
    torch::Tensor y;
    if (way == kLayer) {
      y = layer.forward(x);
    } else if (way == kOnednn) {
      const auto [lo_t, hi_t] = torch::aminmax(x);
      const float lo = lo_t.item<float>(), c = 255.0001f / (hi_t.item<float>() - lo);
      y = params->apply_dynamic((x - lo).mul_(c).clamp_(0.0, 255.0), false)
              .div_(c)
              .add_(row_sums, lo);
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

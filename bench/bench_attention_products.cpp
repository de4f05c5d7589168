// The attention's two batched products (scores Q K^T and values P V), forward and backward, on
// t5-small's training shape (batch 16, 8 heads, 128 positions, d_kv 64), through
// nn::batched_matmul (strided BLAS gemm per matrix) against torch::matmul (libtorch's bmm), in
// one process, so the two are compared on the same machine state.
//
//   bench_attention_products [--benchmark_format=json]
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "compacter/nn/batched_matmul.h"

namespace {

constexpr int64_t kBatch = 16, kHeads = 8, kLen = 128, kDkv = 64;

torch::Tensor heads(const torch::Tensor& x) {
  return x.view({kBatch, kLen, kHeads, kDkv}).transpose(1, 2);
}

void attention_products(benchmark::State& state) {
  const bool blas = state.range(0) == 1;
  torch::set_num_threads(static_cast<int>(state.range(1)));
  torch::manual_seed(0);
  torch::Tensor q = torch::randn({kBatch, kLen, kHeads * kDkv}).requires_grad_(true);
  torch::Tensor k = torch::randn({kBatch, kLen, kHeads * kDkv}).requires_grad_(true);
  torch::Tensor v = torch::randn({kBatch, kLen, kHeads * kDkv}).requires_grad_(true);
  auto mm = [&](const torch::Tensor& a, const torch::Tensor& b) {
    return blas ? compacter::nn::batched_matmul(a, b) : torch::matmul(a, b);
  };
  for (auto _ : state) {
    torch::Tensor scores = mm(heads(q), heads(k).transpose(-1, -2));
    torch::Tensor p = torch::softmax(scores, -1);
    torch::Tensor out = mm(p, heads(v));
    out.sum().backward();
    q.mutable_grad() = torch::Tensor();
    k.mutable_grad() = torch::Tensor();
    v.mutable_grad() = torch::Tensor();
  }
  // 2 products forward, 4 backward, 2 m n k FLOPs each.
  state.counters["GFLOP/s"] = benchmark::Counter(
      6.0 * 2.0 * kBatch * kHeads * kLen * kLen * kDkv / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(blas ? "nn::batched_matmul" : "torch::matmul");
}

BENCHMARK(attention_products)
    ->ArgsProduct({{0, 1}, {1, 2}})
    ->ArgNames({"blas", "threads"})
    ->Unit(benchmark::kMillisecond)
    ->Repetitions(3)
    ->ReportAggregatesOnly(false);

}  // namespace

BENCHMARK_MAIN();

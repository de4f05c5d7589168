// Forward + backward of one adapter projection (spec §3.6, §8): PHM (full B_i), LPHM (rank-1
// B_i, Compacter) and a dense Linear of the same size, in = 768, out = 24, a batch of
// 16 x 128 tokens. Arguments: n. H is materialised on every forward pass, as in the reference.
#include <ATen/CPUGeneratorImpl.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "compacter/peft/adapters.h"
#include "compacter/peft/phm.h"

namespace {

using compacter::peft::PhmLinear;
using compacter::peft::PhmOptions;

constexpr int64_t kIn = 768, kOut = 24, kTokens = 16 * 128;

template <typename Layer>
void run(benchmark::State& state, Layer& layer) {
  torch::Tensor x = torch::randn({kTokens, kIn});
  for (auto _ : state) {
    layer->zero_grad();
    torch::Tensor y = layer->forward(x);
    y.sum().backward();
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * kTokens);
}

void BM_Phm(benchmark::State& state, bool factorized) {
  torch::set_num_threads(1);
  auto gen = at::detail::createCPUGenerator(0);
  PhmOptions o;
  o.n = state.range(0);
  o.factorized = factorized;
  torch::Tensor rule;
  if (factorized) {
    rule = compacter::peft::make_shared_rule(o.n, compacter::peft::RuleInit::kNormal, 1e-4, gen);
    rule.set_requires_grad(true);
  }
  PhmLinear layer(kIn, kOut, o, gen, rule);
  run(state, layer);
}

void BM_PhmFull(benchmark::State& state) {
  BM_Phm(state, false);
}
void BM_Lphm(benchmark::State& state) {
  BM_Phm(state, true);
}

void BM_Dense(benchmark::State& state) {
  torch::set_num_threads(1);
  auto gen = at::detail::createCPUGenerator(0);
  compacter::peft::DenseProjection layer(kIn, kOut, gen);
  run(state, layer);
}

BENCHMARK(BM_PhmFull)->Arg(4)->Arg(8)->Arg(12)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Lphm)->Arg(4)->Arg(8)->Arg(12)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Dense)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();

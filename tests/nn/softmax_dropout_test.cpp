// nn::softmax_dropout against double precision from the definitions (softmax(scores + bias) times
// the documented dropout mask of the drawn seed, and its gradient by double-precision autograd)
// and libtorch's fp32 operators: every bias shape T5 passes (full, per head, per key, none) and
// others that broadcast (per query, a single value), the bias's gradient, a permuted bias, masked
// keys (exactly 0), a fully masked row (uniform), rows over four threads, and the unfused operators
// where it does not fuse (evaluation, p = 0, fp64).
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <limits>

#include "compacter/nn/dropout.h"
#include "compacter/nn/softmax_dropout.h"

#include "support/tensor_near.h"

namespace compacter {
namespace {

uint64_t seed_after(uint64_t manual) {
  torch::manual_seed(manual);
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  return at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
}

TEST(SoftmaxDropout, EqualsTheDefinitionForEveryBiasShape) {
  const int threads = at::get_num_threads();
  at::set_num_threads(4);
  const int64_t b = 3, h = 4, q = 7, k = 37;  // 37: partial sums and a tail
  const std::vector<std::vector<int64_t>> bias_shapes = {
      {b, h, q, k}, {1, h, q, k}, {b, 1, 1, k}, {}, {b, h, q, 1}, {h, 1, k}, {1}};
  for (const auto& shape : bias_shapes) {
    torch::manual_seed(2);
    torch::Tensor scores = (torch::randn({b, h, q, k}) * 4).requires_grad_(true);
    torch::Tensor bias;
    if (!shape.empty()) bias = torch::randn(shape).requires_grad_(true);
    if (shape.size() == 4 && shape[0] == 1)  // the position bias's layout: [1, q, k, h] permuted
      bias = torch::randn({1, q, k, h}).permute({0, 3, 1, 2}).requires_grad_(true);
    const double p = 0.2;
    const uint64_t seed = seed_after(17);
    torch::manual_seed(17);
    const torch::Tensor out = nn::softmax_dropout(scores, bias, p, true);
    const torch::Tensor mask = nn::dropout_mask(scores.sizes(), p, seed, torch::kDouble);
    // Double precision from the definitions.
    torch::Tensor sd = scores.detach().to(torch::kDouble).requires_grad_(true);
    torch::Tensor bd;
    if (bias.defined()) bd = bias.detach().to(torch::kDouble).requires_grad_(true);
    const torch::Tensor want = torch::softmax(bias.defined() ? sd + bd : sd, -1) * mask;
    EXPECT_TENSOR_NEAR(out, want, 1e-7, 1e-5);
    EXPECT_TRUE(torch::equal(out == 0, mask == 0)) << shape.size();
    // libtorch's fp32 operators.
    const torch::Tensor torch_out =
        torch::softmax(bias.defined() ? scores.detach() + bias.detach() : scores.detach(), -1) *
        nn::dropout_mask(scores.sizes(), p, seed, torch::kFloat32);
    EXPECT_TENSOR_NEAR(out, torch_out, 1e-7, 1e-5);
    const torch::Tensor g = torch::randn(out.sizes());
    out.backward(g);
    want.backward(g.to(torch::kDouble));
    EXPECT_TENSOR_NEAR(scores.grad(), sd.grad(), 1e-6, 1e-4);
    if (bias.defined()) {
      ASSERT_TRUE(bias.grad().defined());
      EXPECT_EQ(bias.grad().sizes(), bias.sizes());
      // A bias broadcast along the keys (last size 1) has the gradient 0 in exact arithmetic
      // (softmax is shift invariant): each element sums n of the scores' gradients, which fp32
      // cancels to a few ulp of each term per term. The other shapes keep 1e-6.
      const bool along_keys = bias.dim() == 0 || bias.size(-1) == 1;
      const double n = static_cast<double>(scores.numel()) / static_cast<double>(bias.numel());
      EXPECT_TENSOR_NEAR(bias.grad(), bd.grad(), along_keys ? std::max(1e-6, 2e-7 * n) : 1e-6,
                         1e-4);
    }
  }
  at::set_num_threads(threads);
}

TEST(SoftmaxDropout, MaskedKeysGetNothingAndAFullyMaskedRowIsUniform) {
  const float lowest = std::numeric_limits<float>::lowest();
  torch::Tensor scores = torch::randn({2, 2, 3, 20});
  torch::Tensor bias = torch::zeros({2, 1, 1, 20});
  bias.index_put_({0, 0, 0, torch::indexing::Slice(10, 20)}, lowest);
  torch::manual_seed(5);
  const uint64_t seed = seed_after(5);
  torch::manual_seed(5);
  torch::Tensor out = nn::softmax_dropout(scores, bias, 0.1, true);
  const torch::Tensor mask = nn::dropout_mask(scores.sizes(), 0.1, seed, torch::kFloat32);
  EXPECT_TRUE(torch::equal(out.index({0, torch::indexing::Slice(), torch::indexing::Slice(),
                                      torch::indexing::Slice(10, 20)}),
                           torch::zeros({2, 3, 10})));
  // Every key masked in one row: softmax of equal values.
  torch::Tensor all = torch::full({1, 1, 1, 8}, lowest);
  torch::manual_seed(6);
  const uint64_t seed2 = seed_after(6);
  torch::manual_seed(6);
  out = nn::softmax_dropout(torch::zeros({1, 1, 1, 8}), all, 0.1, true);
  EXPECT_TENSOR_NEAR(out,
                     torch::full({1, 1, 1, 8}, 1.0 / 8) *
                         nn::dropout_mask({1, 1, 1, 8}, 0.1, seed2, torch::kFloat32),
                     1e-7, 1e-6);
}

TEST(SoftmaxDropout, UnfusedWhereItDoesNotApply) {
  const torch::Tensor scores = torch::randn({2, 3, 4, 5}), bias = torch::randn({1, 3, 4, 5});
  EXPECT_TRUE(torch::equal(nn::softmax_dropout(scores, bias, 0.1, false),
                           torch::softmax(scores + bias, -1)));
  EXPECT_TRUE(torch::equal(nn::softmax_dropout(scores, bias, 0.0, true),
                           torch::softmax(scores + bias, -1)));
  const torch::Tensor s64 = scores.to(torch::kDouble), b64 = bias.to(torch::kDouble);
  const uint64_t seed = seed_after(8);
  torch::manual_seed(8);
  EXPECT_TRUE(torch::equal(
      nn::softmax_dropout(s64, b64, 0.3, true),
      torch::softmax(s64 + b64, -1) * nn::dropout_mask(s64.sizes(), 0.3, seed, torch::kDouble)));
}

}  // namespace
}  // namespace compacter

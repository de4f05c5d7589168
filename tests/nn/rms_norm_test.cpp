// nn::rms_norm, the fused fp32 CPU kernel of T5's layer norm: its output and both gradients against
// HF's formula evaluated in float64 by libtorch's own operators (with autograd for the gradients),
// over widths that do and do not fill the kernel's lanes, more rows than its 64 chunks and
// unevenly split, non-contiguous inputs, each gradient asked alone; the weight's gradient is the
// same bits whatever the thread count; the module takes the fused path in fp32 and the composite
// one in fp64; rms_normalise times a weight (per-row weights) gives rms_norm's bits.
#include <torch/torch.h>

#include <vector>

#include "compacter/nn/layers.h"
#include "compacter/nn/rms_norm.h"

#include "support/tensor_near.h"

namespace compacter {
namespace {

struct Reference {
  torch::Tensor y, dx, dg;
};

// HF T5LayerNorm in float64: x * rsqrt(mean(x^2) + eps) * g, gradients by autograd.
Reference reference(const torch::Tensor& x, const torch::Tensor& g, const torch::Tensor& dy,
                    double eps) {
  torch::Tensor xd = x.detach().to(torch::kFloat64).requires_grad_(true);
  torch::Tensor gd = g.detach().to(torch::kFloat64).requires_grad_(true);
  torch::Tensor y = xd * torch::rsqrt(xd.pow(2).mean(-1, true) + eps) * gd;
  y.backward(dy.to(torch::kFloat64));
  return {y.detach(), xd.grad(), gd.grad()};
}

TEST(RmsNorm, FusedMatchesFloat64Reference) {
  torch::manual_seed(3);
  const double eps = 1e-6;
  // {rows..., width}: widths below, at and off the 8 lanes; rows fewer than, equal to and more
  // than the 64 chunks (200 = 64 * 3 + 8: chunks of 3 and 4 rows).
  const std::vector<std::vector<int64_t>> shapes = {
      {1, 1}, {3, 7}, {2, 5, 8}, {4, 16, 512}, {200, 33}, {2, 100, 1031}, {64, 24}};
  for (const auto& shape : shapes) {
    SCOPED_TRACE(::testing::PrintToString(shape));
    torch::Tensor x = (torch::randn(shape) * 3).requires_grad_(true);
    torch::Tensor g = (torch::randn({shape.back()}) + 1).requires_grad_(true);
    torch::Tensor dy = torch::randn(shape);
    ASSERT_TRUE(nn::rms_norm_fused_applies(x, g));
    torch::Tensor y = nn::rms_norm(x, g, eps);
    y.backward(dy);
    const Reference ref = reference(x, g, dy, eps);
    EXPECT_TENSOR_NEAR(y, ref.y, 1e-5, 1e-5);
    EXPECT_TENSOR_NEAR(x.grad(), ref.dx, 1e-5, 1e-4);
    EXPECT_TENSOR_NEAR(g.grad(), ref.dg, 1e-4, 1e-4);
  }
}

TEST(RmsNorm, EachGradientAloneAndNoneInInference) {
  torch::manual_seed(4);
  const double eps = 1e-6;
  torch::Tensor x0 = torch::randn({6, 9, 40});
  torch::Tensor g0 = torch::randn({40});
  torch::Tensor dy = torch::randn({6, 9, 40});
  const Reference ref = reference(x0, g0, dy, eps);

  torch::Tensor x = x0.clone().requires_grad_(true);  // the frozen norm of Compacter: dx only
  nn::rms_norm(x, g0, eps).backward(dy);
  EXPECT_TENSOR_NEAR(x.grad(), ref.dx, 1e-5, 1e-4);

  torch::Tensor g = g0.clone().requires_grad_(true);  // a trained norm over a frozen input
  nn::rms_norm(x0, g, eps).backward(dy);
  EXPECT_TENSOR_NEAR(g.grad(), ref.dg, 1e-4, 1e-4);

  torch::NoGradGuard no_grad;
  torch::Tensor y = nn::rms_norm(x0, g0, eps);
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TENSOR_NEAR(y, ref.y, 1e-5, 1e-5);
}

TEST(RmsNorm, NonContiguousInput) {
  torch::manual_seed(5);
  torch::Tensor x = torch::randn({24, 6, 3}).transpose(0, 2).requires_grad_(true);  // [3, 6, 24]
  ASSERT_FALSE(x.is_contiguous());
  torch::Tensor g = torch::randn({24});
  torch::Tensor dy = torch::randn({3, 6, 24}).transpose(0, 1).contiguous().transpose(0, 1);
  ASSERT_FALSE(dy.is_contiguous());
  const Reference ref = reference(x, g, dy, 1e-6);
  torch::Tensor y = nn::rms_norm(x, g, 1e-6);
  y.backward(dy);
  EXPECT_TENSOR_NEAR(y, ref.y, 1e-5, 1e-5);
  EXPECT_TENSOR_NEAR(x.grad(), ref.dx, 1e-5, 1e-4);
}

TEST(RmsNorm, WeightGradientDoesNotDependOnThreads) {
  torch::manual_seed(6);
  torch::Tensor x = torch::randn({300, 128}) * 10;
  torch::Tensor dy = torch::randn({300, 128});
  const int threads = at::get_num_threads();
  std::vector<torch::Tensor> grads;
  for (int t : {1, 2, 3}) {
    at::set_num_threads(t);
    torch::Tensor g = torch::linspace(0.5, 1.5, 128).requires_grad_(true);
    nn::rms_norm(x, g, 1e-6).backward(dy);
    grads.push_back(g.grad());
  }
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(grads[0], grads[1]));
  EXPECT_TRUE(torch::equal(grads[0], grads[2]));
}

TEST(RmsNorm, ModuleTakesTheFusedPathInFp32AndTheCompositeInFp64) {
  torch::manual_seed(7);
  nn::RMSNorm norm(16, 1e-6);
  torch::Tensor g = torch::randn({16});
  torch::Tensor x = torch::randn({2, 3, 16});
  const Reference ref = reference(x, g, torch::ones({2, 3, 16}), 1e-6);
  torch::NoGradGuard no_grad;
  norm->weight.copy_(g);
  EXPECT_TRUE(nn::rms_norm_fused_applies(x, norm->weight));
  EXPECT_TENSOR_NEAR(norm->forward(x), ref.y, 1e-5, 1e-5);
  norm->to(torch::kFloat64);
  torch::Tensor xd = x.to(torch::kFloat64);
  EXPECT_FALSE(nn::rms_norm_fused_applies(xd, norm->weight));
  EXPECT_TENSOR_NEAR(norm->forward(xd), ref.y, 1e-12, 1e-12);
}

TEST(RmsNorm, NormaliseThenScaleGivesTheFusedBits) {
  // Per-row weights (serve's mixed adapters) scale rms_normalise's rows; one adapter's rows must
  // get what that adapter alone gets from rms_norm.
  torch::manual_seed(8);
  torch::Tensor x = torch::randn({4, 5, 64}) * 2;
  torch::Tensor g = torch::randn({64});
  EXPECT_TRUE(
      torch::equal(g * nn::rms_normalise(x, 1e-6, torch::kFloat32), nn::rms_norm(x, g, 1e-6)));
  torch::Tensor gb = g.to(torch::kBFloat16);
  EXPECT_TRUE(
      torch::equal(gb * nn::rms_normalise(x, 1e-6, torch::kBFloat16), nn::rms_norm(x, gb, 1e-6)));
}

}  // namespace
}  // namespace compacter

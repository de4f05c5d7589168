// nn::dropout (hash-based CPU masks): eval and p = 0 leave the input alone; the kept share is
// 1 - p; kept values are x / (1 - p) and the rest 0; masks follow the documented hash exactly
// (recomputed here naively); the same generator seed gives the same mask and the next call a new
// one; gradients are the mask; add_dropout is h + x times the mask.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <utility>
#include <vector>

#include "compacter/nn/dropout.h"

#include "support/tensor_near.h"

namespace compacter {
namespace {

TEST(Dropout, EvalAndZeroProbabilityReturnTheInput) {
  torch::Tensor x = torch::randn({4, 5});
  EXPECT_TRUE(nn::dropout(x, 0.1, false).is_same(x));
  EXPECT_TRUE(nn::dropout(x, 0.0, true).is_same(x));
}

TEST(Dropout, KeptShareAndScale) {
  torch::manual_seed(1);
  const double p = 0.1;
  torch::Tensor x = torch::rand({1000, 1000}) + 0.5;  // no zeros
  torch::Tensor y = nn::dropout(x, p, true);
  torch::Tensor kept = y != 0;
  const double share = kept.to(torch::kDouble).mean().item<double>();
  const double sigma = std::sqrt(p * (1 - p) / 1e6);
  EXPECT_NEAR(share, 1 - p, 5 * sigma);
  torch::Tensor expected = x * static_cast<float>(1.0 / (1.0 - p));
  EXPECT_TRUE(torch::equal(y.masked_select(kept), expected.masked_select(kept)));
  // Rows and columns are not correlated: each row keeps about 900 of 1000.
  torch::Tensor per_row = kept.to(torch::kDouble).sum(1);
  EXPECT_GT(per_row.min().item<double>(), 900 - 6 * std::sqrt(1000 * p * (1 - p)));
  EXPECT_LT(per_row.max().item<double>(), 900 + 6 * std::sqrt(1000 * p * (1 - p)));
}

TEST(Dropout, MaskIsTheDocumentedHash) {
  const uint64_t seed = 0x1234567890ABCDEFULL;
  const double p = 0.25;
  torch::Tensor mask = nn::dropout_mask({3, 7}, p, seed, torch::kDouble);
  for (int64_t i = 0; i < 21; ++i) {
    uint64_t z = seed + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    const bool keep = (z >> 40) >= static_cast<uint64_t>(0.25 * (1 << 24));
    EXPECT_EQ(mask.view(-1)[i].item<double>(), keep ? 1.0 / 0.75 : 0.0) << i;
  }
  // The same in bf16 and fp32 (values rounded to the dtype).
  torch::Tensor b = nn::dropout_mask({3, 7}, p, seed, torch::kBFloat16);
  EXPECT_TRUE(torch::equal(b.to(torch::kDouble) != 0, mask != 0));
}

TEST(Dropout, SeededFromTheDefaultGenerator) {
  torch::Tensor x = torch::ones({64, 64});
  torch::manual_seed(7);
  torch::Tensor a1 = nn::dropout(x, 0.5, true);
  torch::Tensor a2 = nn::dropout(x, 0.5, true);
  torch::manual_seed(7);
  torch::Tensor b1 = nn::dropout(x, 0.5, true);
  EXPECT_TRUE(torch::equal(a1, b1));
  EXPECT_FALSE(torch::equal(a1, a2));
}

// The fused pass equals x times the documented mask of the seed drawn from the default generator,
// bit for bit, in fp32 and bf16, for a non-contiguous x too; its gradient is the same mask.
TEST(Dropout, EqualsInputTimesTheMaskOfTheDrawnSeed) {
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (const bool transposed : {false, true}) {
      torch::Tensor x = torch::randn({37, 29}).to(dtype);
      if (transposed) x = x.t();
      torch::manual_seed(11);
      const torch::Tensor y = nn::dropout(x, 0.2, true);
      torch::manual_seed(11);
      at::Generator gen = at::detail::getDefaultCPUGenerator();
      const uint64_t seed = at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
      const torch::Tensor mask = nn::dropout_mask(x.sizes(), 0.2, seed, dtype);
      EXPECT_TRUE(torch::equal(y, x * mask)) << dtype << " " << transposed;
      torch::Tensor leaf = x.detach().to(torch::kFloat32).requires_grad_(true);
      torch::manual_seed(11);
      nn::dropout(leaf, 0.2, true).backward(torch::full({leaf.size(0), leaf.size(1)}, 2.0));
      EXPECT_TRUE(
          torch::equal(leaf.grad(), 2.0 * nn::dropout_mask(x.sizes(), 0.2, seed, torch::kFloat32)));
    }
  }
}

// A tensor large enough to be split over threads (chunks of 16384 elements, each starting its
// hash mid-sequence) keeps the documented mask, with and without relu and the recorded pass
// mask; fp32 and bf16 (the vectorised paths, bf16 on its bits with its own rounding, checked here
// against libtorch's bf16 product) and fp64.
TEST(Dropout, ChunksSplitOverThreadsKeepTheDocumentedMask) {
  const int threads = at::get_num_threads();
  at::set_num_threads(4);  // 4 chunks whatever the machine has
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kDouble}) {
    for (const bool grad : {false, true}) {
      // 63,300 elements (an odd tail), magnitudes 2^-30..2^30 (bf16 rounds its products).
      torch::Tensor x = (torch::randn({300, 211}) *
                         torch::pow(2.0, torch::randint(-30, 30, {300, 211}, torch::kDouble)))
                            .to(dtype);
      x.view(-1).slice(0, 100, 140).zero_();
      x.requires_grad_(grad);
      torch::manual_seed(3);
      at::Generator gen = at::detail::getDefaultCPUGenerator();
      const uint64_t seed = at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
      const torch::Tensor mask = nn::dropout_mask(x.sizes(), 0.1, seed, dtype);
      torch::manual_seed(3);
      const torch::Tensor y = nn::dropout(x, 0.1, true);
      torch::manual_seed(3);
      const torch::Tensor r = nn::relu_dropout(x, 0.1, true);
      torch::NoGradGuard no_grad;
      EXPECT_TRUE(torch::equal(y, x * mask)) << dtype << " " << grad;
      EXPECT_TRUE(torch::equal(r, torch::relu(x) * mask)) << dtype << " " << grad;
    }
  }
  at::set_num_threads(threads);
}

// relu_dropout is dropout(relu(x)) fused: the same values and the same gradient, bit for bit,
// for the same drawn seed, with exact zeros in x (relu's boundary): fused in fp32, fp64 and bf16.
TEST(Dropout, ReluDropoutEqualsDropoutOfRelu) {
  for (const auto dtype : {torch::kFloat32, torch::kDouble, torch::kBFloat16}) {
    for (const bool transposed : {false, true}) {
      torch::Tensor x = torch::randn({41, 23}).to(dtype);
      x.view(-1).slice(0, 0, 40).zero_();
      if (transposed) x = x.t();
      torch::Tensor a = x.detach().clone().requires_grad_(true);
      torch::Tensor b = x.detach().clone().requires_grad_(true);
      const torch::Tensor g = torch::randn(x.sizes()).to(dtype);
      torch::manual_seed(5);
      const torch::Tensor fused = nn::relu_dropout(a, 0.3, true);
      torch::manual_seed(5);
      const torch::Tensor unfused = nn::dropout(torch::relu(b), 0.3, true);
      EXPECT_TRUE(torch::equal(fused, unfused)) << dtype << " " << transposed;
      fused.backward(g);
      unfused.backward(g);
      EXPECT_TRUE(torch::equal(a.grad(), b.grad())) << dtype << " " << transposed;
      EXPECT_GT(fused.count_nonzero().item<int64_t>(), 0);
    }
  }
  const torch::Tensor x = torch::randn({5, 6});
  EXPECT_TRUE(torch::equal(nn::relu_dropout(x, 0.3, false), torch::relu(x)));
}

TEST(Dropout, GradientIsTheMask) {
  torch::manual_seed(3);
  torch::Tensor x = torch::randn({50, 40}, torch::requires_grad());
  torch::Tensor y = nn::dropout(x, 0.3, true);
  y.sum().backward();
  torch::Tensor mask = (y != 0).to(torch::kFloat) * static_cast<float>(1.0 / 0.7);
  EXPECT_TENSOR_NEAR(x.grad(), mask, 1e-8, 1e-5);  // allclose's defaults
}

// The backward's one pass gives libtorch's g * passed * scale bit for bit (the bool mask promoted
// to g's dtype, then the scale of 1 / (1 - p) rounded to g's dtype), in fp32, bf16, fp16 and fp64,
// for dropout and relu_dropout, a non-contiguous g, NaN and signed zeros in g, over four threads'
// chunks and an odd tail.
TEST(Dropout, BackwardEqualsLibtorchsProductOfTheMask) {
  const int threads = at::get_num_threads();
  at::set_num_threads(4);
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kHalf, torch::kDouble}) {
    for (const bool relu : {false, true}) {
      if (relu && dtype == torch::kHalf) continue;  // not fused: relu's own backward, then ours
      const double p = 0.3;
      torch::Tensor x = torch::randn({211, 300}).to(dtype).requires_grad_(true);
      torch::Tensor g = (torch::randn({300, 211}) * 100).to(dtype).t();  // strided
      g.select(0, 0).fill_(std::nan(""));
      g.select(0, 1).fill_(-0.0);
      torch::manual_seed(9);
      at::Generator gen = at::detail::getDefaultCPUGenerator();
      const uint64_t seed = at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
      torch::Tensor passed = nn::dropout_mask(x.sizes(), p, seed, torch::kFloat32) != 0;
      if (relu) passed = passed & (x.detach() > 0);
      torch::manual_seed(9);
      torch::Tensor y = relu ? nn::relu_dropout(x, p, true) : nn::dropout(x, p, true);
      y.backward(g);
      const double scale = torch::scalar_tensor(1.0 / (1.0 - p), g.options()).item<double>();
      const torch::Tensor expected = g.mul(passed).mul_(scale);
      // NaN where libtorch has NaN (its sign and payload aside: libtorch's vectorised bf16
      // conversion writes 0xFFFF, ours 0x7FC0 as c10::BFloat16 does), the same bits elsewhere.
      EXPECT_TRUE(torch::equal(x.grad().isnan(), expected.isnan())) << dtype << " " << relu;
      const torch::Tensor got = torch::nan_to_num(x.grad()), want = torch::nan_to_num(expected);
      EXPECT_TRUE(torch::equal(got, want)) << dtype << " " << relu;
      EXPECT_TRUE(torch::equal(torch::signbit(got), torch::signbit(want))) << dtype << " " << relu;
    }
  }
  at::set_num_threads(threads);
}

// add_dropout(h, y) is h + y times the documented mask of the drawn seed, computed here with
// libtorch's own products and sums (y * mask in y's dtype, then the add in the result's), bit
// for bit: fp32 and fp32, bf16 and bf16, fp32 h and bf16 y (autocast's residual stream), fp64 (not
// fused), a transposed y, magnitudes 2^-30..2^30 and exact zeros, over four threads' chunks and an
// odd tail. h's gradient is the output's; y's is that gradient in y's dtype times the mask.
TEST(Dropout, AddDropoutIsTheResidualPlusTheMaskedInput) {
  const int threads = at::get_num_threads();
  at::set_num_threads(4);
  const std::vector<std::pair<torch::ScalarType, torch::ScalarType>> cases = {
      {torch::kFloat32, torch::kFloat32},
      {torch::kBFloat16, torch::kBFloat16},
      {torch::kFloat32, torch::kBFloat16},
      {torch::kDouble, torch::kDouble}};
  for (const auto& [h_type, y_type] : cases) {
    for (const bool transposed : {false, true}) {
      const double p = 0.15;
      const auto magnitudes = [] {
        return torch::randn({211, 300}) *
               torch::pow(2.0, torch::randint(-30, 30, {211, 300}, torch::kDouble));
      };
      torch::Tensor h = magnitudes().to(h_type);
      torch::Tensor y = magnitudes().to(y_type);
      y.view(-1).slice(0, 50, 90).zero_();
      h.view(-1).slice(0, 70, 110).zero_();
      if (transposed) y = y.t().contiguous().t();  // the same values, strided
      h.requires_grad_(true);
      y.requires_grad_(true);
      torch::manual_seed(21);
      at::Generator gen = at::detail::getDefaultCPUGenerator();
      const uint64_t seed = at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
      torch::manual_seed(21);
      const torch::Tensor out = nn::add_dropout(h, y, p, true);
      const torch::Tensor mask = nn::dropout_mask(y.sizes(), p, seed, y_type);
      const torch::Tensor expected = h.detach() + y.detach() * mask;
      ASSERT_EQ(out.scalar_type(), expected.scalar_type());
      EXPECT_TRUE(torch::equal(out, expected)) << h_type << " " << y_type << " " << transposed;
      const torch::Tensor g = torch::randn(out.sizes()).to(out.scalar_type());
      out.backward(g);
      EXPECT_TRUE(torch::equal(h.grad(), g.to(h_type))) << h_type << " " << y_type;
      EXPECT_TRUE(torch::equal(y.grad(), g.to(y_type) * mask)) << h_type << " " << y_type;
    }
  }
  at::set_num_threads(threads);
  // Not training, or p = 0: h + y.
  const torch::Tensor h = torch::randn({4, 5}), y = torch::randn({4, 5});
  EXPECT_TRUE(torch::equal(nn::add_dropout(h, y, 0.1, false), h + y));
  EXPECT_TRUE(torch::equal(nn::add_dropout(h, y, 0.0, true), h + y));
}

}  // namespace
}  // namespace compacter

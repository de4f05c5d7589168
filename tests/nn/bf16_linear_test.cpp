// nn::bf16_linear (linear layers under bf16 autocast through oneDNN's dnnl_gemm_bf16bf16f32,
// nn/bf16_linear.h): on operands that bf16 holds exactly, its products and gradients are the exact
// sums rounded once (to bf16 for the product, to the input's dtype for a gradient), against
// double-precision references; on random operands it stays within a bf16 unit of libtorch's
// autocast; which copy of a frozen weight it keeps; where it falls back to torch::linear; and a
// whole T5 step under autocast against the same step on libtorch's product. The GEMM itself and
// the layer again with the GEMM widened to fp32 (the path of CPUs without bf16 instructions).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "compacter/core/error.h"
#include "compacter/nn/autocast.h"
#include "compacter/nn/bf16_linear.h"
#include "compacter/nn/t5.h"
#include "support/bf16_rounding.h"
#include "support/tiny_t5.h"

namespace compacter::nn {
namespace {

using testing::round_to_bf16;

#define REQUIRE_BF16_GEMM()          \
  if (!onednn_bf16_gemm_available()) \
  GTEST_SKIP() << "no oneDNN GEMM (bf16, or fp32 to widen to) in this process"

// Forces the bf16 GEMM to widen its operands to fp32 (nn::set_bf16_gemm_widening) in a scope,
// so that the widened path is tested where the CPU has a bf16 GEMM too.
struct ForcedWidening {
  ForcedWidening() { set_bf16_gemm_widening(true); }
  ~ForcedWidening() { set_bf16_gemm_widening(false); }
};

// Small integers: exact in bf16, and every product and sum below stays exact in fp32 (and double).
torch::Tensor integers(std::vector<int64_t> sizes) {
  return torch::randint(-8, 9, sizes).to(torch::kFloat32);
}

// y = x W^T + b in double, by loops.
torch::Tensor exact_product(const torch::Tensor& x_in, const torch::Tensor& w_in,
                            const torch::Tensor& b) {
  const torch::Tensor x = x_in.reshape({-1, x_in.size(-1)}).to(torch::kDouble).contiguous();
  const torch::Tensor w = w_in.to(torch::kDouble).contiguous();
  const int64_t rows = x.size(0), in = x.size(1), out = w.size(0);
  torch::Tensor y = torch::zeros({rows, out}, torch::kDouble);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = b.defined() ? b[o].item<double>() : 0.0;
      for (int64_t i = 0; i < in; ++i) s += x[r][i].item<double>() * w[o][i].item<double>();
      y[r][o] = s;
    }
  std::vector<int64_t> sizes(x_in.sizes().begin(), x_in.sizes().end());
  sizes.back() = out;
  return y.view(sizes);
}

// y is x W^T + b summed exactly and rounded once to bf16; `rounded` notes whether some sum needed
// the rounding (so that rounding is tested).
void expect_exact_sums_rounded_once(const torch::Tensor& y, const torch::Tensor& x,
                                    const torch::Tensor& w, const torch::Tensor& b, bool& rounded) {
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  const torch::Tensor exact = exact_product(x, w, b);
  const torch::Tensor want = round_to_bf16(exact);
  ASSERT_EQ(y.sizes(), want.sizes());
  EXPECT_TRUE(torch::equal(y.to(torch::kFloat32), want)) << x.sizes() << " bias " << b.defined();
  rounded = rounded || !torch::equal(want, exact.to(torch::kFloat32));
}

TEST(Bf16Linear, ProductsAreTheExactSumsRoundedOnceToBf16) {
  REQUIRE_BF16_GEMM();
  torch::manual_seed(1);
  const torch::Tensor w = integers({13, 37}), b = integers({13});
  const torch::Tensor strided = integers({37, 9}).t();  // not contiguous
  AutocastScope scope(torch::kCPU, true);
  bool rounded = false;
  for (const torch::Tensor& x : {integers({3, 7, 37}), integers({5, 37}), strided, integers({37})})
    for (bool bias : {false, true}) {
      const torch::Tensor bb = bias ? b : torch::Tensor();
      ASSERT_TRUE(bf16_linear_applies(x, w, bb));
      expect_exact_sums_rounded_once(bf16_linear(x, w, bb), x, w, bb, rounded);
    }
  EXPECT_TRUE(rounded);
}

// onednn_gemm_bf16 on its own, native (where the CPU has a bf16 GEMM) and widened to fp32: for
// every transposition and leading dimensions wider than the matrices, C is the exact sum (small
// integers: exact in bf16 and fp32), and C's columns past n stay as they were.
TEST(Bf16Gemm, EveryTranspositionAndLeadingDimensionGivesTheExactSumsNativeAndWidened) {
  REQUIRE_BF16_GEMM();
  torch::manual_seed(17);
  const int64_t m = 23, n = 19, k = 41;
  for (bool widen : {false, true}) {
    ForcedWidening forced;
    set_bf16_gemm_widening(widen);
    if (widen) {
      EXPECT_TRUE(bf16_gemm_widens());
    }
    for (char ta : {'N', 'T'})
      for (char tb : {'N', 'T'})
        for (int64_t pad : {0, 5}) {
          const torch::Tensor a = integers({m, k}), b = integers({k, n});
          // Stored as the GEMM reads them: op 'T' keeps the transpose, each row padded.
          auto stored = [&](const torch::Tensor& x, char op) {
            const torch::Tensor s = op == 'N' ? x : x.t().contiguous();
            torch::Tensor wide = integers({s.size(0), s.size(1) + pad}).to(torch::kBFloat16);
            wide.narrow(1, 0, s.size(1)).copy_(s.to(torch::kBFloat16));
            return wide;
          };
          const torch::Tensor as = stored(a, ta), bs = stored(b, tb);
          torch::Tensor c = torch::full({m, n + pad}, -3.0f);
          onednn_gemm_bf16(ta, tb, m, n, k, as.data_ptr<c10::BFloat16>(), as.size(1),
                           bs.data_ptr<c10::BFloat16>(), bs.size(1), c.data_ptr<float>(), n + pad);
          const torch::Tensor want = a.to(torch::kDouble).mm(b.to(torch::kDouble));
          EXPECT_TRUE(torch::equal(c.narrow(1, 0, n), want.to(torch::kFloat32)))
              << "widen " << widen << " " << ta << tb << " pad " << pad;
          if (pad > 0) {
            EXPECT_TRUE(torch::equal(c.narrow(1, n, pad), torch::full({m, pad}, -3.0f)));
          }
        }
  }
}

// The layer with its GEMM widened to fp32: the product the exact sums rounded once to bf16 (with
// and without a bias), the gradients the exact sums in the inputs' dtypes; the kernels' report
// says so.
TEST(Bf16Linear, WidenedToFp32ItGivesTheExactSumsRoundedOnce) {
  REQUIRE_BF16_GEMM();
  ForcedWidening forced;
  EXPECT_NE(bf16_onednn_products().find("widened from bf16"), std::string::npos)
      << bf16_onednn_products();
  torch::manual_seed(19);
  const torch::Tensor w = integers({13, 37}), b = integers({13});
  bool rounded = false;
  {
    AutocastScope scope(torch::kCPU, true);
    for (const torch::Tensor& x : {integers({3, 7, 37}), integers({37, 9}).t(), integers({37})})
      for (bool bias : {false, true}) {
        const torch::Tensor bb = bias ? b : torch::Tensor();
        expect_exact_sums_rounded_once(bf16_linear(x, w, bb), x, w, bb, rounded);
      }
  }
  EXPECT_TRUE(rounded);
  const torch::Tensor x = integers({4, 37}).requires_grad_(true);
  const torch::Tensor wt = w.clone().requires_grad_(true), bt = b.clone().requires_grad_(true);
  const torch::Tensor g = integers({4, 13}).to(torch::kBFloat16);
  {
    AutocastScope scope(torch::kCPU, true);
    bf16_linear(x, wt, bt).backward(g);
  }
  const torch::Tensor gd = g.to(torch::kDouble);
  EXPECT_TRUE(torch::equal(x.grad(), gd.mm(w.to(torch::kDouble)).to(torch::kFloat32)));
  EXPECT_TRUE(
      torch::equal(wt.grad(), gd.t().mm(x.detach().to(torch::kDouble)).to(torch::kFloat32)));
  EXPECT_TRUE(torch::equal(bt.grad(), gd.sum(0).to(torch::kFloat32)));
}

// On random operands: within one bf16 unit (2^-7 relative) of libtorch's autocast, which rounds x
// and W alike and the product once, in another summation order, but rounds the bias to bf16
// first; and within half a unit (2^-8) of the exact product of the rounded operands, give or take
// fp32's summation error (< 1e-3 here).
TEST(Bf16Linear, RandomProductsAgreeWithLibtorchsAutocast) {
  REQUIRE_BF16_GEMM();
  torch::manual_seed(2);
  const torch::Tensor x = torch::randn({4, 6, 64}), w = torch::randn({48, 64}),
                      b = torch::randn({48});
  AutocastScope scope(torch::kCPU, true);
  const torch::Tensor y = bf16_linear(x, w, b).to(torch::kDouble);
  const torch::Tensor ref = torch::linear(x, w, b).to(torch::kDouble);
  const torch::Tensor exact = exact_product(x.to(torch::kBFloat16), w.to(torch::kBFloat16), b);
  const torch::Tensor to_libtorch = std::ldexp(1.0, -7) * (2 * exact.abs() + b.abs() + 1e-3);
  EXPECT_LE(((y - ref).abs() / to_libtorch).max().item<double>(), 1.0);
  const torch::Tensor to_exact = std::ldexp(1.0, -8) * exact.abs() + 1e-3;
  EXPECT_LE(((y - exact).abs() / to_exact).max().item<double>(), 1.0);
}

TEST(Bf16Linear, GradientsAreTheExactSumsInTheInputsDtypes) {
  REQUIRE_BF16_GEMM();
  torch::manual_seed(3);
  const torch::Tensor x0 = integers({2, 6, 24}), w0 = integers({10, 24}), b0 = integers({10});
  const torch::Tensor g = integers({2, 6, 10}).to(torch::kBFloat16);
  // In double: dX = G W, dW = G^T X (over every row), db = sum of G's rows; all exact.
  const torch::Tensor gd = g.to(torch::kDouble).reshape({-1, 10});
  const torch::Tensor xd = x0.to(torch::kDouble).reshape({-1, 24}), wd = w0.to(torch::kDouble);
  const torch::Tensor dx = gd.mm(wd).view({2, 6, 24}), dw = gd.t().mm(xd), db = gd.sum(0);
  for (torch::ScalarType xtype : {torch::kFloat32, torch::kBFloat16})
    for (int mask = 1; mask < 8; ++mask) {
      const torch::Tensor x = x0.to(xtype).clone().requires_grad_(mask & 1);
      const torch::Tensor w = w0.clone().requires_grad_(mask & 2);
      const torch::Tensor b = b0.clone().requires_grad_(mask & 4);
      {
        AutocastScope scope(torch::kCPU, true);
        bf16_linear(x, w, b).backward(g);
      }
      const std::string what = cat("x ", xtype, " mask ", mask);
      EXPECT_EQ(x.grad().defined(), (mask & 1) != 0) << what;
      EXPECT_EQ(w.grad().defined(), (mask & 2) != 0) << what;
      EXPECT_EQ(b.grad().defined(), (mask & 4) != 0) << what;
      if (mask & 1) {
        EXPECT_EQ(x.grad().scalar_type(), xtype) << what;
        // |dX| <= 10 * 64 needs more than bf16's 8 significant bits: rounded once.
        const torch::Tensor want =
            xtype == torch::kFloat32 ? dx.to(torch::kFloat32) : round_to_bf16(dx);
        EXPECT_TRUE(torch::equal(x.grad().to(torch::kFloat32), want)) << what;
      }
      if (mask & 2) {
        EXPECT_EQ(w.grad().scalar_type(), torch::kFloat32) << what;
        EXPECT_TRUE(torch::equal(w.grad(), dw.to(torch::kFloat32))) << what;
      }
      if (mask & 4) {
        EXPECT_TRUE(torch::equal(b.grad(), db.to(torch::kFloat32))) << what;
      }
    }
}

// A frozen weight's bf16 copy kept between calls: made where gradients flow and W needs none,
// made again when W is written in place or is another tensor, dropped when W is trained again,
// never made for inference; each time the products are those of W as it is.
TEST(Bf16Linear, AFrozenWeightsKeptCopyFollowsTheWeight) {
  REQUIRE_BF16_GEMM();
  torch::manual_seed(4);
  torch::Tensor w = integers({11, 19});
  const torch::Tensor b = integers({11});
  FrozenWeight frozen;
  AutocastScope scope(torch::kCPU, true);
  auto check_step = [&](const torch::Tensor& weight, const std::string& what) {
    const torch::Tensor x = integers({2, 5, 19}).requires_grad_(true);
    const torch::Tensor y = bf16_linear(x, weight, b, &frozen);
    EXPECT_TRUE(
        torch::equal(y.to(torch::kFloat32), round_to_bf16(exact_product(x.detach(), weight, b))))
        << what;
    EXPECT_TRUE(frozen.holds()) << what;
  };
  check_step(w, "first use");
  check_step(w, "reused");
  {
    torch::NoGradGuard no_grad;
    w.mul_(-1).add_(1);  // in place: its version changes
  }
  check_step(w, "after an in-place change");
  w = integers({11, 19});  // another tensor
  check_step(w, "another weight");
  const torch::Tensor trained = w.clone().requires_grad_(true);
  bf16_linear(integers({3, 19}).requires_grad_(true), trained, b, &frozen).sum().backward();
  EXPECT_FALSE(frozen.holds());
  FrozenWeight unused;
  {
    torch::NoGradGuard no_grad;
    bf16_linear(integers({4, 19}), w, b, &unused);
  }
  bf16_linear(integers({4, 19}), w, b, &unused);  // nothing needs a gradient
  EXPECT_FALSE(unused.holds());
}

// An input several layers read is rounded once while training (q, k and v of one input): each
// layer's product is still that of the input as it is, after an in-place change too.
TEST(Bf16Linear, AnInputReadByManyLayersGivesEachItsProduct) {
  REQUIRE_BF16_GEMM();
  torch::manual_seed(6);
  const torch::Tensor x = integers({3, 4, 16}).requires_grad_(true);
  std::vector<torch::Tensor> ws;
  for (int i = 0; i < 6; ++i) ws.push_back(integers({5, 16}));
  AutocastScope scope(torch::kCPU, true);
  for (int round = 0; round < 2; ++round) {
    for (const torch::Tensor& w : ws) {
      const torch::Tensor y = bf16_linear(x, w, {});
      EXPECT_TRUE(
          torch::equal(y.to(torch::kFloat32), round_to_bf16(exact_product(x.detach(), w, {}))))
          << "round " << round;
    }
    torch::NoGradGuard no_grad;
    x.mul_(-1).add_(1);  // in place: its version changes
  }
}

// What a caller may do with torch::linear's output works here too: change it in place under
// autograd (the output is a tensor of its own, not a view the function made).
TEST(Bf16Linear, ItsOutputCanBeChangedInPlace) {
  REQUIRE_BF16_GEMM();
  const torch::Tensor x = integers({2, 3, 8}).requires_grad_(true), w = integers({4, 8});
  AutocastScope scope(torch::kCPU, true);
  torch::Tensor y = bf16_linear(x, w, {});
  y.relu_();
  y.sum().backward();
  const torch::Tensor passed = (exact_product(x.detach(), w, {}) > 0).to(torch::kDouble);
  const torch::Tensor want = passed.reshape({-1, 4}).mm(w.to(torch::kDouble)).view({2, 3, 8});
  EXPECT_TRUE(torch::equal(x.grad().to(torch::kDouble), want));
}

TEST(Bf16Linear, WhatItDoesNotCoverIsTorchLinear) {
  REQUIRE_BF16_GEMM();
  const torch::Tensor x = torch::randn({4, 8}), w = torch::randn({3, 8});
  EXPECT_FALSE(bf16_linear_applies(x, w, {}));  // no autocast
  EXPECT_TRUE(torch::equal(bf16_linear(x, w, {}), torch::linear(x, w)));
  AutocastScope scope(torch::kCPU, true);
  EXPECT_TRUE(bf16_linear_applies(x, w, {}));
  EXPECT_FALSE(bf16_linear_applies(x.to(torch::kDouble), w.to(torch::kDouble), {}));
  EXPECT_FALSE(bf16_linear_applies(torch::randn({4, 0}), torch::randn({3, 0}), {}));
  EXPECT_FALSE(bf16_linear_applies(x, w, torch::randn({3}).to(torch::kDouble)));
  EXPECT_FALSE(bf16_linear_applies(x, w, torch::randn({4})));  // a bias of the wrong size
}

// A bf16 model's layers at inference on fewer than 16 rows (nn::bf16_model_linear): the exact
// sums of the bf16 operands rounded once to bf16, against a double-precision reference; within a
// bf16 unit of libtorch's bf16 product on random operands; and only where it applies.
TEST(Bf16ModelLinear, FewRowsAreTheExactSumsRoundedOnceToBf16) {
  REQUIRE_BF16_GEMM();
  torch::NoGradGuard no_grad;
  torch::manual_seed(11);
  const torch::Tensor w = integers({13, 37}).to(torch::kBFloat16);
  const torch::Tensor b = integers({13}).to(torch::kBFloat16);
  const torch::Tensor strided = integers({37, 3}).t().to(torch::kBFloat16);  // not contiguous
  bool rounded = false;
  for (const torch::Tensor& x :
       {integers({1, 37}).to(torch::kBFloat16), integers({3, 5, 37}).to(torch::kBFloat16), strided,
        integers({15, 37}).to(torch::kBFloat16)})
    for (bool bias : {false, true}) {
      const torch::Tensor bb = bias ? b : torch::Tensor();
      ASSERT_TRUE(bf16_model_linear_applies(x, w, bb)) << x.sizes();
      for (const torch::Tensor& y : {bf16_model_linear(x, w, bb), nn::linear(x, w, bb)})
        expect_exact_sums_rounded_once(y, x, w, bb, rounded);
    }
  EXPECT_TRUE(rounded);

  // Random operands: within one bf16 unit of libtorch's bf16 product (another summation order).
  const torch::Tensor xr = torch::randn({2, 64}).to(torch::kBFloat16);
  const torch::Tensor wr = torch::randn({300, 64}).to(torch::kBFloat16);
  const torch::Tensor y = nn::linear(xr, wr, {}).to(torch::kDouble);
  const torch::Tensor ref = torch::linear(xr, wr).to(torch::kDouble);
  const torch::Tensor exact = exact_product(xr, wr, {});
  EXPECT_LE(
      ((y - ref).abs() / (std::ldexp(1.0, -7) * (2 * exact.abs() + 1e-3))).max().item<double>(),
      1.0);
}

TEST(Bf16ModelLinear, AppliesOnlyToABf16ModelsFewRowsAtInference) {
  REQUIRE_BF16_GEMM();
  const torch::Tensor w = torch::randn({8, 16}).to(torch::kBFloat16);
  const torch::Tensor x = torch::randn({15, 16}).to(torch::kBFloat16);
  EXPECT_TRUE(bf16_model_linear_applies(x, w, {}));
  // 16 rows and more: only where the GEMM widens to fp32 (libtorch's bf16 product is slow there).
  const bool widens = bf16_gemm_widens();
  EXPECT_EQ(bf16_model_linear_applies(torch::randn({16, 16}).to(torch::kBFloat16), w, {}), widens);
  EXPECT_EQ(bf16_model_linear_applies(torch::randn({2, 8, 16}).to(torch::kBFloat16), w, {}),
            widens);
  EXPECT_FALSE(bf16_model_linear_applies(x.to(torch::kFloat32), w, {}));  // fp32 input
  EXPECT_FALSE(bf16_model_linear_applies(x, w.to(torch::kFloat32), {}));  // fp32 weight
  EXPECT_FALSE(bf16_model_linear_applies(x, w, torch::randn({8})));       // fp32 bias
  {
    const torch::Tensor trained = w.clone().requires_grad_(true);  // gradients: libtorch's
    EXPECT_FALSE(bf16_model_linear_applies(x, trained, {}));
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(bf16_model_linear_applies(x, trained, {}));
  }
  {
    AutocastScope scope(torch::kCPU, true);  // bf16_linear's
    EXPECT_FALSE(bf16_model_linear_applies(x, w, {}));
  }
  set_bf16_linear_kernel(Bf16LinearKernel::kLibtorch);
  EXPECT_FALSE(bf16_model_linear_applies(x, w, {}));
  EXPECT_TRUE(torch::equal(nn::linear(x, w, {}), torch::linear(x, w)));
  set_bf16_linear_kernel(Bf16LinearKernel::kOnednn);
  const torch::Tensor many = torch::randn({16, 16}).to(torch::kBFloat16);
  if (!widens) {
    EXPECT_TRUE(torch::equal(nn::linear(many, w, {}), torch::linear(many, w)));
  }
  {
    ForcedWidening forced;
    EXPECT_TRUE(bf16_model_linear_applies(many, w, {}));
  }
}

// The layers follow the process-wide choice; which path ran shows in the frozen weight's kept bf16
// copy, which only oneDNN's path makes.
TEST(Bf16Linear, TheProcessWideChoiceRoutesTheLayers) {
  REQUIRE_BF16_GEMM();
  const torch::Tensor x = integers({5, 16}).requires_grad_(true), w = torch::randn({7, 16});
  ASSERT_EQ(bf16_linear_kernel(), Bf16LinearKernel::kOnednn);  // the default
  AutocastScope scope(torch::kCPU, true);
  FrozenWeight ours, theirs;
  EXPECT_TRUE(torch::equal(nn::linear(x, w, {}, &ours), bf16_linear(x, w, {})));
  EXPECT_TRUE(ours.holds());
  set_bf16_linear_kernel(Bf16LinearKernel::kLibtorch);
  EXPECT_TRUE(torch::equal(nn::linear(x, w, {}, &theirs), torch::linear(x, w)));
  EXPECT_FALSE(theirs.holds());
  set_bf16_linear_kernel(Bf16LinearKernel::kOnednn);
  EXPECT_EQ(bf16_linear_kernel_name(Bf16LinearKernel::kOnednn), "oneDNN");
  EXPECT_EQ(bf16_linear_kernel_name(Bf16LinearKernel::kLibtorch), "libtorch");
}

// A T5 training step under bf16 autocast (dropout off, the linear layers frozen as PEFT methods
// train, so the copies are kept; the norms and the output layer trained): the loss and gradients
// of the layers on oneDNN's GEMM against those on libtorch's product, which round differently
// (bf16's unit is 2^-8): within a few units.
TEST(Bf16Linear, AT5StepUnderAutocastMatchesLibtorchs) {
  REQUIRE_BF16_GEMM();
  // vocabulary 50, d_model 32, d_kv 8, 4 heads, d_ff 64, 2 layers; v1.1 (an untied output layer).
  T5Config c = testing::tiny_t5_config({50, 32, 8, 4, 64, 2, -1, true});
  c.dropout_rate = 0;
  torch::manual_seed(5);
  T5Model model(c);
  model->train();
  for (const auto& m : model->modules())
    if (auto* l = dynamic_cast<LinearImpl*>(m.get())) l->weight.requires_grad_(false);
  const torch::Tensor ids = torch::randint(3, 50, {3, 9}, torch::kLong);
  const torch::Tensor labels = torch::randint(3, 50, {3, 4}, torch::kLong);
  auto step = [&](Bf16LinearKernel kernel) {
    set_bf16_linear_kernel(kernel);
    model->zero_grad();
    torch::Tensor loss;
    {
      AutocastScope scope(torch::kCPU, true);
      loss = model->forward(ids, {}, {}, labels).loss;
    }
    loss.backward();
    std::vector<torch::Tensor> grads;
    for (const auto& p : model->parameters())
      if (p.requires_grad()) grads.push_back(p.grad().detach().flatten().clone());
    set_bf16_linear_kernel(Bf16LinearKernel::kOnednn);
    return std::make_pair(loss.item<double>(), torch::cat(grads).to(torch::kDouble));
  };
  for (int i = 0; i < 2; ++i) {  // the second step reuses the kept copies
    const auto [loss_ref, grads_ref] = step(Bf16LinearKernel::kLibtorch);
    const auto [loss, grads] = step(Bf16LinearKernel::kOnednn);
    EXPECT_NEAR(loss, loss_ref, 4 * std::ldexp(1.0, -8) * std::abs(loss_ref)) << "step " << i;
    ASSERT_GT(grads_ref.norm().item<double>(), 0);
    const double relative = ((grads - grads_ref).norm() / grads_ref.norm()).item<double>();
    EXPECT_LT(relative, 0.05) << "step " << i;
  }
  for (const auto& m : model->modules()) {
    if (auto* l = dynamic_cast<LinearImpl*>(m.get())) {
      EXPECT_TRUE(l->frozen_weight().holds());
    }
  }
}

}  // namespace
}  // namespace compacter::nn

// nn::onednn_linear (the fp32 linear layers through oneDNN's dnnl_sgemm, nn/linear_kernel.h):
// its products against naive loops in double precision within fp32's error bound, its
// gradients against the analytic ones computed in double (dX = G W, dW = G^T X, db = sum G),
// which tensors it keeps, where it falls back to torch::linear, and a whole T5 step with the
// layers on oneDNN against the same step on the BLAS.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "compacter/nn/autocast.h"
#include "compacter/nn/linear_kernel.h"
#include "compacter/nn/t5.h"
#include "support/tiny_t5.h"

namespace compacter::nn {
namespace {

#define REQUIRE_ONEDNN() \
  if (!onednn_sgemm_available()) GTEST_SKIP() << "no dnnl_sgemm in this process"

// y[r, o] = sum_i x[r, i] w[o, i] + b[o] by loops, in double; with the magnitude
// sum_i |x[r, i] w[o, i]| + |b[o]| that scales fp32's error.
std::pair<torch::Tensor, torch::Tensor> naive(const torch::Tensor& x_in, const torch::Tensor& w_in,
                                              const torch::Tensor& b_in) {
  const torch::Tensor x = x_in.reshape({-1, x_in.size(-1)}).to(torch::kDouble).contiguous();
  const torch::Tensor w = w_in.to(torch::kDouble).contiguous();
  const int64_t rows = x.size(0), in = x.size(1), out = w.size(0);
  torch::Tensor y = torch::zeros({rows, out}, torch::kDouble), mag = torch::zeros_like(y);
  const double* xp = x.data_ptr<double>();
  const double* wp = w.data_ptr<double>();
  const torch::Tensor b = b_in.defined() ? b_in.to(torch::kDouble).contiguous() : torch::Tensor();
  const double* bp = b.defined() ? b.data_ptr<double>() : nullptr;
  double* yp = y.data_ptr<double>();
  double* mp = mag.data_ptr<double>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = bp ? bp[o] : 0.0, m = std::abs(s);
      for (int64_t i = 0; i < in; ++i) {
        s += xp[r * in + i] * wp[o * in + i];
        m += std::abs(xp[r * in + i] * wp[o * in + i]);
      }
      yp[r * out + o] = s;
      mp[r * out + o] = m;
    }
  std::vector<int64_t> sizes(x_in.sizes().begin(), x_in.sizes().end());
  sizes.back() = out;
  return {y.view(sizes), mag.view(sizes)};
}

// max |y - ref| / ((k + 1) 2^-23 magnitude): at most 1 for a correct fp32 product (one rounding
// per term and the bias, twice the unit roundoff to allow any summation order).
double error_over_bound(const torch::Tensor& y, const torch::Tensor& ref, const torch::Tensor& mag,
                        int64_t k) {
  const torch::Tensor bound = static_cast<double>(k + 1) * std::ldexp(1.0, -23) * mag + 1e-30;
  return ((y.to(torch::kDouble) - ref).abs() / bound).max().item<double>();
}

// Row counts on both sides of the forward's transposed computation ((W x^T)^T from 16 to 128
// rows, x W^T below and above), with 13 outputs and with 130 (the transposition's blocks of 64
// columns, the last one partial).
TEST(OnednnLinear, ProductsWithinFp32sBoundOfNaiveLoops) {
  REQUIRE_ONEDNN();
  torch::manual_seed(1);
  const torch::Tensor x3 = torch::randn({3, 7, 37});
  const torch::Tensor strided = torch::randn({37, 9}).t();  // not contiguous
  for (int64_t outputs : {13, 130}) {
    const torch::Tensor w = torch::randn({outputs, 37}), b = torch::randn({outputs});
    for (const torch::Tensor& x :
         {x3, torch::randn({5, 37}), strided, torch::randn({37}), torch::randn({15, 37}),
          torch::randn({16, 37}), torch::randn({2, 64, 37}), torch::randn({129, 37})})
      for (bool bias : {false, true}) {
        const torch::Tensor bb = bias ? b : torch::Tensor();
        ASSERT_TRUE(onednn_linear_applies(x, w, bb));
        const torch::Tensor y = onednn_linear(x, w, bb);
        const auto [ref, mag] = naive(x, w, bb);
        ASSERT_EQ(y.sizes(), ref.sizes());
        EXPECT_TRUE(y.is_contiguous()) << x.sizes();
        EXPECT_LE(error_over_bound(y, ref, mag, 37), 1.0)
            << x.sizes() << " outputs " << outputs << " bias " << bias;
      }
  }
}

// A weight of 8M elements or more takes the transposed product from 5 rows (below 16 rows it is
// the only kind that does): 4, 5, 8 and 15 rows of a 8,192 x 1,024 weight against naive loops.
TEST(OnednnLinear, ALargeWeightsProductsWithinFp32sBoundFromFewRows) {
  REQUIRE_ONEDNN();
  torch::manual_seed(5);
  const torch::Tensor w = torch::randn({8192, 1024}), b = torch::randn({8192});
  for (int64_t rows : {4, 5, 8, 15}) {
    const torch::Tensor x = torch::randn({rows, 1024});
    const torch::Tensor y = onednn_linear(x, w, b);
    const auto [ref, mag] = naive(x, w, b);
    ASSERT_EQ(y.sizes(), ref.sizes());
    EXPECT_LE(error_over_bound(y, ref, mag, 1024), 1.0) << rows << " rows";
  }
}

TEST(OnednnLinear, GradientsAreTheAnalyticOnes) {
  REQUIRE_ONEDNN();
  torch::manual_seed(2);
  const torch::Tensor x0 = torch::randn({2, 6, 24}), w0 = torch::randn({10, 24}),
                      b0 = torch::randn({10}), g = torch::randn({2, 6, 10});
  // In double: dX = G W, dW = G^T X (over every row), db = sum of G's rows.
  const torch::Tensor gd = g.to(torch::kDouble).reshape({-1, 10});
  const torch::Tensor xd = x0.to(torch::kDouble).reshape({-1, 24}), wd = w0.to(torch::kDouble);
  const torch::Tensor dx = gd.mm(wd).view({2, 6, 24}), dw = gd.t().mm(xd), db = gd.sum(0);
  for (int mask = 1; mask < 8; ++mask) {
    const torch::Tensor x = x0.clone().requires_grad_(mask & 1);
    const torch::Tensor w = w0.clone().requires_grad_(mask & 2);
    const torch::Tensor b = b0.clone().requires_grad_(mask & 4);
    onednn_linear(x, w, b).backward(g);
    auto near = [](const torch::Tensor& got, const torch::Tensor& want) {
      return (got.to(torch::kDouble) - want).abs().max().item<double>() <
             1e-5 * (1 + want.abs().max().item<double>());
    };
    EXPECT_EQ(x.grad().defined(), (mask & 1) != 0);
    EXPECT_EQ(w.grad().defined(), (mask & 2) != 0);
    EXPECT_EQ(b.grad().defined(), (mask & 4) != 0);
    if (mask & 1) {
      EXPECT_TRUE(near(x.grad(), dx)) << "mask " << mask;
    }
    if (mask & 2) {
      EXPECT_TRUE(near(w.grad(), dw)) << "mask " << mask;
    }
    if (mask & 4) {
      EXPECT_TRUE(near(b.grad(), db)) << "mask " << mask;
    }
  }
}

// What a caller may do with the output of torch::linear works here too: change it in place
// under autograd, feed back a gradient that is not contiguous, use no bias, a 1-D input.
TEST(OnednnLinear, BehavesLikeTorchLinearForItsCallers) {
  REQUIRE_ONEDNN();
  torch::manual_seed(4);
  const torch::Tensor w0 = torch::randn({6, 5});
  for (const torch::Tensor& x0 : {torch::randn({3, 4, 5}), torch::randn({5})}) {
    const torch::Tensor x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
    const torch::Tensor xr = x0.clone().requires_grad_(true), wr = w0.clone().requires_grad_(true);
    torch::Tensor y = onednn_linear(x, w, {});
    torch::Tensor yr = torch::linear(xr, wr);
    y.relu_();  // in place on the output, as torch::linear's allows
    yr.relu_();
    // A gradient with a zero stride (expanded): not contiguous.
    const torch::Tensor g = torch::randn({6}).expand(y.sizes());
    y.backward(g);
    yr.backward(g);
    EXPECT_LT((x.grad() - xr.grad()).abs().max().item<double>(), 1e-5) << x0.sizes();
    EXPECT_LT((w.grad() - wr.grad()).abs().max().item<double>(), 1e-5) << x0.sizes();
    EXPECT_EQ(x.grad().sizes(), x0.sizes());
  }
}

// A frozen weight's W^T kept between calls (FrozenWeight): the same products and input
// gradients as the loops, made where gradients flow and W needs none, made again when W is
// written in place or is another tensor, dropped when W is trained again, never made for
// inference.
TEST(OnednnLinear, AFrozenWeightsKeptTransposeFollowsTheWeight) {
  REQUIRE_ONEDNN();
  torch::manual_seed(5);
  torch::Tensor w = torch::randn({11, 19});
  const torch::Tensor b = torch::randn({11}), g = torch::randn({2, 5, 11});
  FrozenWeight frozen;
  auto check_step = [&](const torch::Tensor& weight, const std::string& what) {
    const torch::Tensor x = torch::randn({2, 5, 19}).requires_grad_(true);
    const torch::Tensor y = onednn_linear(x, weight, b, &frozen);
    const auto [ref, mag] = naive(x.detach(), weight, b);
    EXPECT_LE(error_over_bound(y.detach(), ref, mag, 19), 1.0) << what;
    y.backward(g);
    const torch::Tensor dx = g.to(torch::kDouble).reshape({-1, 11}).mm(weight.to(torch::kDouble));
    EXPECT_LT((x.grad().reshape({-1, 19}).to(torch::kDouble) - dx).abs().max().item<double>(),
              1e-5 * (1 + dx.abs().max().item<double>()))
        << what;
    EXPECT_TRUE(frozen.holds()) << what;
  };
  check_step(w, "first use");
  check_step(w, "reused");
  {
    torch::NoGradGuard no_grad;
    w.mul_(-2).add_(1);  // in place: its version changes
  }
  check_step(w, "after an in-place change");
  w = torch::randn({11, 19});  // another tensor
  check_step(w, "another weight");
  // Trained again: no W^T kept.
  const torch::Tensor trained = w.clone().requires_grad_(true);
  onednn_linear(torch::randn({3, 19}).requires_grad_(true), trained, b, &frozen).sum().backward();
  EXPECT_FALSE(frozen.holds());
  // Inference (no gradients): none made.
  FrozenWeight unused;
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::randn({4, 19});
    const auto [ref, mag] = naive(x, w, b);
    EXPECT_LE(error_over_bound(onednn_linear(x, w, b, &unused), ref, mag, 19), 1.0);
  }
  onednn_linear(torch::randn({4, 19}), w, b, &unused);  // nothing needs a gradient
  EXPECT_FALSE(unused.holds());
}

TEST(OnednnLinear, WhatItDoesNotCoverIsTorchLinear) {
  REQUIRE_ONEDNN();
  const torch::Tensor x = torch::randn({4, 8}), w = torch::randn({3, 8});
  EXPECT_FALSE(onednn_linear_applies(x.to(torch::kDouble), w.to(torch::kDouble), {}));
  EXPECT_FALSE(onednn_linear_applies(x.to(torch::kBFloat16), w.to(torch::kBFloat16), {}));
  EXPECT_FALSE(onednn_linear_applies(torch::randn({4, 0}), torch::randn({3, 0}), {}));
  EXPECT_FALSE(onednn_linear_applies(x, w, torch::randn({3}).to(torch::kDouble)));
  {
    AutocastScope scope(torch::kCPU, true);  // autocast picks bf16 for the product
    EXPECT_FALSE(onednn_linear_applies(x, w, {}));
    EXPECT_EQ(onednn_linear(x, w, {}).scalar_type(), torch::kBFloat16);
  }
  const torch::Tensor d = onednn_linear(x.to(torch::kDouble), w.to(torch::kDouble), {});
  EXPECT_TRUE(torch::equal(d, torch::linear(x.to(torch::kDouble), w.to(torch::kDouble))));
}

TEST(OnednnLinear, TheProcessWideChoiceRoutesTheLayers) {
  REQUIRE_ONEDNN();
  const torch::Tensor x = torch::randn({5, 16}), w = torch::randn({7, 16});
  ASSERT_EQ(fp32_linear_kernel(), Fp32LinearKernel::kBlas);  // the default
  EXPECT_TRUE(torch::equal(nn::linear(x, w, {}), torch::linear(x, w)));
  set_fp32_linear_kernel(Fp32LinearKernel::kOnednn);
  EXPECT_TRUE(torch::equal(nn::linear(x, w, {}), onednn_linear(x, w, {})));
  set_fp32_linear_kernel(Fp32LinearKernel::kBlas);
  EXPECT_EQ(fp32_linear_kernel_name(Fp32LinearKernel::kOnednn), "oneDNN");
  EXPECT_EQ(fp32_linear_kernel_name(Fp32LinearKernel::kBlas), "OpenBLAS");
}

// A T5 training step (dropout off) with every linear layer on oneDNN: the same loss and
// gradients as on the BLAS, within fp32's rounding of two summation orders; also with the linear
// layers frozen (as PEFT methods train), over two steps, the layers keeping W^T.
TEST(OnednnLinear, AT5StepMatchesTheBlasStep) {
  REQUIRE_ONEDNN();
  testing::TinyT5 shape;
  shape.vocab = 50;
  shape.d_model = 32;
  shape.d_kv = 8;
  shape.heads = 4;
  shape.d_ff = 64;
  shape.v1_1 = true;  // an untied output layer: one more linear layer
  T5Config c = testing::tiny_t5_config(shape);
  c.dropout_rate = 0;
  torch::manual_seed(3);
  T5Model model(c);
  model->train();
  const torch::Tensor ids = torch::randint(3, 50, {3, 9}, torch::kLong);
  const torch::Tensor labels = torch::randint(3, 50, {3, 4}, torch::kLong);
  auto step = [&](Fp32LinearKernel kernel) {
    set_fp32_linear_kernel(kernel);
    model->zero_grad();
    const torch::Tensor loss = model->forward(ids, {}, {}, labels).loss;
    loss.backward();
    std::vector<torch::Tensor> grads{loss.detach().reshape({1})};
    for (const auto& p : model->parameters()) grads.push_back(p.grad().detach().flatten().clone());
    set_fp32_linear_kernel(Fp32LinearKernel::kBlas);
    return torch::cat(grads);
  };
  auto compare = [&](const std::string& what) {
    const torch::Tensor blas = step(Fp32LinearKernel::kBlas);
    const torch::Tensor onednn = step(Fp32LinearKernel::kOnednn);
    EXPECT_LT((blas - onednn).abs().max().item<double>(),
              1e-5 * (1 + blas.abs().max().item<double>()))
        << what;
    EXPECT_FALSE(torch::equal(blas, torch::zeros_like(blas))) << what;
  };
  compare("all trained");
  int linear_layers = 0;
  for (const auto& m : model->modules())
    if (auto* l = dynamic_cast<LinearImpl*>(m.get())) {
      l->weight.requires_grad_(false);
      ++linear_layers;
    }
  ASSERT_GT(linear_layers, 0);
  compare("linear layers frozen, first step");
  compare("linear layers frozen, second step");
  for (const auto& m : model->modules())
    if (auto* l = dynamic_cast<LinearImpl*>(m.get())) {
      EXPECT_TRUE(l->frozen_weight().holds());
    }
}

}  // namespace
}  // namespace compacter::nn

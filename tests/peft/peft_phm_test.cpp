// PHM / LPHM layer (spec §3.6, §11 item 2): Kronecker algebra, the worked example, an explicit
// loop over the block formula, n = 1 == Linear, init ranges, finite-difference gradients.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "compacter/core/error.h"
#include "compacter/nn/autocast.h"
#include "compacter/nn/bf16_linear.h"
#include "compacter/peft/phm.h"
#include "support/bf16_rounding.h"
#include "support/finite_difference.h"
#include "support/tensor_near.h"

namespace compacter::peft {
namespace {

TEST(PeftPhm, KroneckerMatchesTorchKron) {
  torch::manual_seed(1);
  torch::Tensor a = torch::randn({3, 2}), b = torch::randn({4, 5});
  EXPECT_TENSOR_NEAR(kronecker(a, b), torch::kron(a, b), 1e-6);
  // Batched: slice by slice.
  torch::Tensor A = torch::randn({3, 2, 3}), B = torch::randn({3, 4, 2});
  torch::Tensor K = kronecker(A, B);
  ASSERT_EQ(K.sizes(), (std::vector<int64_t>{3, 8, 6}));
  for (int64_t i = 0; i < 3; ++i) EXPECT_TENSOR_NEAR(K[i], torch::kron(A[i], B[i]), 1e-6) << i;
  // phm_weight = sum of the batched Kronecker products.
  torch::Tensor R = torch::randn({3, 3, 3}), W = torch::randn({3, 4, 2});
  EXPECT_TENSOR_NEAR(phm_weight(R, W), kronecker(R, W).sum(0), 1e-5);
}

// Spec §3.6 worked example: n = 2, in = 4, out = 2, r = 1.
TEST(PeftPhm, WorkedExample) {
  auto gen = at::detail::createCPUGenerator(0);
  PhmOptions o;
  o.n = 2;
  o.factorized = true;
  o.rank = 1;
  PhmLinear layer(4, 2, o, gen);
  torch::NoGradGuard no_grad;
  layer->phm_rule.copy_(torch::tensor({1., 2., 3., 4., 0., 1., 1., 0.}).view({2, 2, 2}));
  layer->W_left.copy_(torch::tensor({1., 2., 1., -1.}).view({2, 2, 1}));  // s_1, s_2
  layer->W_right.copy_(torch::tensor({1., 2.}).view({2, 1, 1}));          // t_1, t_2
  torch::Tensor expected = torch::tensor({1., 4., 2., 2., 5., 4., 4., 8.}).view({4, 2});
  EXPECT_TENSOR_NEAR(layer->weight(), expected, 0);
  torch::Tensor x = torch::tensor({1., 1., 1., 1., 0.5, -1., 2., 0.}).view({2, 4});
  torch::Tensor y = layer->forward(x);
  EXPECT_TENSOR_NEAR(y, torch::tensor({12., 18., 8.5, 8.0}).view({2, 2}), 1e-6);
}

// B of the layer's current factors in double: W, or W_left W_right (libtorch's product).
torch::Tensor reference_B(const PhmLinearImpl& layer) {
  if (layer.W.defined()) return layer.W.detach().to(torch::kDouble);
  return torch::matmul(layer.W_left.detach().to(torch::kDouble),
                       layer.W_right.detach().to(torch::kDouble));
}

// H[a*P + p, c*Q + q] = sum_i A_i[a, c] B_i[p, q] written as loops, in double: [n P, n Q].
torch::Tensor explicit_weight(const torch::Tensor& A_in, const torch::Tensor& B_in) {
  const torch::Tensor A = A_in.to(torch::kDouble).contiguous();
  const torch::Tensor B = B_in.to(torch::kDouble).contiguous();
  const int64_t n = A.size(0), P = B.size(1), Q = B.size(2);
  auto a = A.accessor<double, 3>();
  auto bb = B.accessor<double, 3>();
  torch::Tensor H = torch::zeros({n * P, n * Q}, torch::kDouble);
  auto h = H.accessor<double, 2>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < n; ++c)
        for (int64_t p = 0; p < P; ++p)
          for (int64_t q = 0; q < Q; ++q) h[r * P + p][c * Q + q] += a[i][r][c] * bb[i][p][q];
  return H;
}

// max |y - (x H + b)| with H the explicit loop's over the layer's current factors (double).
double worst_vs_explicit_loop(PhmLinearImpl& layer, const torch::Tensor& x_in,
                              const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  const torch::Tensor Ht = explicit_weight(layer.rule(), reference_B(layer));
  torch::Tensor x = x_in.to(torch::kDouble).contiguous();
  torch::Tensor bias_t = layer.b.to(torch::kDouble).contiguous();
  const int64_t in = Ht.size(0), out = Ht.size(1), rows = x.size(0);
  const double* H = Ht.data_ptr<double>();
  auto xa = x.accessor<double, 2>();
  auto bias = bias_t.accessor<double, 1>();
  torch::Tensor yd = y.to(torch::kDouble);
  double worst = 0.0;
  for (int64_t row = 0; row < rows; ++row) {
    for (int64_t j = 0; j < out; ++j) {
      double s = bias[j];
      for (int64_t k = 0; k < in; ++k) s += xa[row][k] * H[k * out + j];
      worst = std::max(worst, std::abs(s - yd[row][j].item<double>()));
    }
  }
  return worst;
}

// y = x H + b against H[a*P + p, c*Q + q] = sum_i A_i[a, c] B_i[p, q] written as loops.
void check_explicit_loop(int64_t n, bool factorized, int64_t rank) {
  SCOPED_TRACE(::testing::Message() << "n=" << n << " factorized=" << factorized);
  const int64_t in = 768, out = 24;  // P = in / n, Q = out / n
  auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(n));
  PhmOptions o;
  o.n = n;
  o.factorized = factorized;
  o.rank = rank;
  torch::Tensor shared = torch::randn({n, n, n}, torch::kDouble);
  PhmLinear layer(in, out, o, gen, factorized ? shared : torch::Tensor());
  layer->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    layer->b.normal_();
  }
  torch::Tensor x = torch::randn({3, in}, torch::kDouble);
  torch::Tensor y;
  {
    torch::NoGradGuard no_grad;
    y = layer->forward(x);
  }
  EXPECT_LT(worst_vs_explicit_loop(*layer, x, y), 1e-9);
}

TEST(PeftPhm, MatchesExplicitLoop) {
  torch::manual_seed(7);
  for (int64_t n : {4, 8, 12}) {
    check_explicit_loop(n, /*factorized=*/true, 1);
    check_explicit_loop(n, /*factorized=*/false, 1);
  }
  check_explicit_loop(4, /*factorized=*/true, 3);  // rank > 1 works (spec §9 #10)
}

TEST(PeftPhm, NEqualsOneIsLinear) {
  auto gen = at::detail::createCPUGenerator(3);
  PhmOptions o;
  o.n = 1;
  o.factorized = false;
  PhmLinear layer(6, 5, o, gen);
  torch::NoGradGuard no_grad;
  layer->phm_rule.fill_(1.0);
  layer->b.normal_();
  torch::Tensor x = torch::randn({4, 6});
  // H = 1 (x) W[0] = W[0], so y = x W[0] + b = linear(x, W[0]^T, b).
  EXPECT_TENSOR_NEAR(layer->forward(x), torch::linear(x, layer->W[0].t(), layer->b), 1e-6);
}

TEST(PeftPhm, RejectsSizesNotDivisibleByN) {
  auto gen = at::detail::createCPUGenerator(0);
  PhmOptions o;
  o.n = 5;
  EXPECT_THROW(PhmLinear(768, 24, o, gen), Error);
  o.n = 4;
  EXPECT_THROW(PhmLinear(768, 24, o, gen, torch::zeros({3, 3, 3})), Error);
  EXPECT_THROW(parse_weight_init("phm"), Error);
  EXPECT_THROW(parse_rule_init("glorot"), Error);
}

// Spec §3.6 init table (d = 24, n = 4): Glorot-uniform gain sqrt(2) per slice.
TEST(PeftPhm, InitRanges) {
  auto gen = at::detail::createCPUGenerator(11);
  PhmOptions o;
  o.n = 4;
  o.factorized = true;
  torch::Tensor shared = make_shared_rule(4, RuleInit::kNormal, 1e-4, gen);
  PhmLinear down(768, 24, o, gen, shared), up(24, 768, o, gen, shared);
  auto check_bound = [](const torch::Tensor& t, double bound) {
    const double m = t.abs().max().item<double>();
    EXPECT_LE(m, bound);
    EXPECT_GT(m, 0.5 * bound);
  };
  check_bound(down->W_left, 0.2494);   // (192 x 1) slices
  check_bound(down->W_right, 1.3093);  // (1 x 6)
  check_bound(up->W_left, 1.3093);
  check_bound(up->W_right, 0.2494);
  EXPECT_EQ(down->b.abs().max().item<double>(), 0.0);
  EXPECT_TRUE(down->shares_rule());
  EXPECT_FALSE(down->phm_rule.defined());
  EXPECT_EQ(down->named_parameters().size(), 3u);  // W_left, W_right, b: the shared A is not here
  EXPECT_NEAR(shared.std().item<double>(), 1e-4, 4e-5);

  // Per-layer A: N(0, 0.01) whatever init_range says (spec §9 #9); full W slices bound 0.2462.
  o.factorized = false;
  o.init_range = 1e-4;
  PhmLinear phm(768, 24, o, gen);
  EXPECT_NEAR(phm->phm_rule.std().item<double>(), 0.01, 0.003);
  check_bound(phm->W, 0.2462);
  o.rule_init = RuleInit::kUniform;
  PhmLinear phm_u(768, 24, o, gen);
  EXPECT_LE(phm_u->phm_rule.abs().max().item<double>(), 0.01);
  torch::Tensor shared_u = make_shared_rule(12, RuleInit::kUniform, 1e-4, gen);
  EXPECT_LE(shared_u.abs().max().item<double>(), 1.0);
  EXPECT_GT(shared_u.abs().max().item<double>(), 0.9);
  // learn_rule = false: the own A is not trained.
  o.learn_rule = false;
  PhmLinear fixed(768, 24, o, gen);
  EXPECT_FALSE(fixed->phm_rule.requires_grad());
  // init "normal": W ~ N(0, init_range).
  o.weight_init = WeightInit::kNormal;
  o.init_range = 0.05;
  PhmLinear normal(768, 24, o, gen);
  EXPECT_NEAR(normal->W.std().item<double>(), 0.05, 0.005);
}

// Under bf16 autocast H is built as autocast builds products: B = W_left W_right and then
// sum_i A_i (x) B_i, each with bf16 operands, summed in fp32 and rounded to bf16 once. On small
// integers every such sum is exact, so H must be the explicit loop's value rounded to bf16 (of
// the rounded B), bit for bit; the fp32 factors get gradients, equal to fp32's to bf16 precision.
TEST(PeftPhm, UnderBf16AutocastTheWeightIsRoundedAsProducts) {
  if (!nn::onednn_bf16_gemm_available()) GTEST_SKIP() << "no oneDNN bf16 GEMM in this process";
  auto gen = at::detail::createCPUGenerator(9);
  PhmOptions o;
  o.n = 4;
  o.factorized = true;
  o.rank = 2;
  PhmLinear layer(64, 16, o, gen);
  {
    torch::NoGradGuard no_grad;
    for (torch::Tensor* t : {&layer->phm_rule, &layer->W_left, &layer->W_right})
      t->copy_(torch::randint(-8, 9, t->sizes()));
  }
  torch::Tensor h;
  {
    nn::AutocastScope scope(torch::kCPU, true);
    h = layer->weight();
  }
  ASSERT_EQ(h.scalar_type(), torch::kBFloat16);
  // The explicit loop in double over A and B = round(W_left W_right) (exact: |B| <= 128).
  const torch::Tensor want =
      explicit_weight(layer->phm_rule.detach(), testing::round_to_bf16(reference_B(*layer)));
  EXPECT_TRUE(torch::equal(h.to(torch::kFloat32), testing::round_to_bf16(want)));
  EXPECT_FALSE(torch::equal(testing::round_to_bf16(want), want.to(torch::kFloat32)));  // rounded
  // Gradients through the bf16 products, against fp32's.
  const torch::Tensor x = torch::randn({5, 64});
  std::vector<torch::Tensor> grads[2];
  for (const bool autocast : {false, true}) {
    nn::AutocastScope scope(torch::kCPU, autocast);
    layer->zero_grad();
    layer->forward(x).to(torch::kFloat32).pow(2).sum().backward();
    for (const torch::Tensor* t : {&layer->phm_rule, &layer->W_left, &layer->W_right}) {
      ASSERT_TRUE(t->grad().defined());
      ASSERT_EQ(t->grad().scalar_type(), torch::kFloat32);
      grads[autocast].push_back(t->grad().clone());
    }
  }
  for (size_t i = 0; i < grads[0].size(); ++i) {
    const double scale = grads[0][i].abs().max().item<double>();
    EXPECT_LT((grads[1][i] - grads[0][i]).abs().max().item<double>(), 0.05 * scale) << i;
  }
}

// Central differences in double precision for every parameter of a loss through two PHM layers
// that share one A: A's gradient must gather both layers' contributions to match.
TEST(PeftPhm, GradientsMatchFiniteDifferences) {
  torch::manual_seed(5);
  auto gen = at::detail::createCPUGenerator(5);
  PhmOptions o;
  o.n = 2;
  o.factorized = true;
  o.rank = 2;
  torch::Tensor shared = make_shared_rule(2, RuleInit::kUniform, 1.0, gen).to(torch::kDouble);
  shared.set_requires_grad(true);
  PhmLinear l1(6, 4, o, gen, shared), l2(4, 6, o, gen, shared);
  o.factorized = false;
  PhmLinear l3(6, 2, o, gen);  // own A, full B
  for (PhmLinearImpl* l : {l1.get(), l2.get(), l3.get()}) {
    l->to(torch::kDouble);
    torch::NoGradGuard no_grad;
    l->b.normal_();
  }
  torch::Tensor x = torch::randn({3, 6}, torch::kDouble);
  auto loss_fn = [&] { return l3->forward(torch::tanh(l2->forward(l1->forward(x)))).pow(2).sum(); };
  std::vector<std::pair<std::string, torch::Tensor>> params{{"shared A", shared}};
  const char* layer_names[] = {"l1.", "l2.", "l3."};
  int k = 0;
  for (PhmLinearImpl* l : {l1.get(), l2.get(), l3.get()}) {
    for (const auto& p : l->named_parameters())
      params.emplace_back(layer_names[k] + p.key(), p.value());
    ++k;
  }
  testing::GradientCheckOptions fd;  // every entry: |autograd - fd| <= 1e-6 (1 + |fd|)
  fd.eps = 1e-6;
  fd.atol = 1e-6;
  fd.rtol = 1e-6;
  EXPECT_TRUE(testing::check_gradients(params, loss_fn, fd).result());
}

// Without gradients H is reused between calls (peft/phm.h): it must follow every change of its
// factors: in-place writes (an optimizer step, the shared rule's owner), new storage (adapter
// loading's set_data), a dtype change, and training steps in between.
TEST(PeftPhm, WithoutGradientsTheReusedWeightFollowsEveryChangeOfItsFactors) {
  torch::manual_seed(11);
  auto gen = at::detail::createCPUGenerator(5);
  PhmOptions o;
  o.n = 4;
  torch::Tensor shared = torch::randn({4, 4, 4}, torch::kDouble);
  PhmLinear layer(32, 8, o, gen, shared);
  layer->to(torch::kDouble);
  const torch::Tensor x = torch::randn({3, 32}, torch::kDouble);
  auto no_grad_output = [&] {
    torch::NoGradGuard no_grad;
    return layer->forward(x);
  };
  EXPECT_LT(worst_vs_explicit_loop(*layer, x, no_grad_output()), 1e-10);
  EXPECT_LT(worst_vs_explicit_loop(*layer, x, no_grad_output()), 1e-10);  // reused
  {
    torch::NoGradGuard no_grad;
    layer->W_left.mul_(3.0);  // as an optimizer step writes
  }
  EXPECT_LT(worst_vs_explicit_loop(*layer, x, no_grad_output()), 1e-10) << "W_left in place";
  {
    torch::NoGradGuard no_grad;
    shared.add_(0.5);  // the shared rule, written by its owner
  }
  EXPECT_LT(worst_vs_explicit_loop(*layer, x, no_grad_output()), 1e-10) << "shared rule";
  layer->W_right.set_data(torch::randn_like(layer->W_right));  // new storage, as loading does
  EXPECT_LT(worst_vs_explicit_loop(*layer, x, no_grad_output()), 1e-10) << "W_right replaced";
  // A training step in between: the graph path, then an in-place update.
  torch::Tensor loss = layer->forward(x).pow(2).sum();
  loss.backward();
  {
    torch::NoGradGuard no_grad;
    layer->W_right.sub_(0.1 * layer->W_right.grad());
  }
  EXPECT_LT(worst_vs_explicit_loop(*layer, x, no_grad_output()), 1e-10) << "after a step";
  layer->to(torch::kFloat);
  shared.set_data(shared.to(torch::kFloat));
  torch::Tensor y;
  {
    torch::NoGradGuard no_grad;
    y = layer->forward(x.to(torch::kFloat));
  }
  EXPECT_EQ(y.scalar_type(), torch::kFloat);
  // fp32 rounding of sums of 32 products, relative to the outputs' size.
  EXPECT_LT(worst_vs_explicit_loop(*layer, x, y), 1e-5 * y.abs().max().item<double>()) << "float32";
}

}  // namespace
}  // namespace compacter::peft

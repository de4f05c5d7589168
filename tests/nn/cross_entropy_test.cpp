// nn::cross_entropy against a double-precision reference (log-sum-exp and softmax in double, the
// mean over the kept rows) and libtorch's cross_entropy: the loss, its gradient, ignored rows,
// all rows ignored (NaN, zero gradient), large and masked logits, NaN, rows over four threads,
// and a label outside the vocabulary refused by name. nn::log_softmax_at (decoding's chosen-token
// log-probability) against log_softmax in double. nn::exp_approx within 2 ulp of exp.
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "compacter/core/error.h"
#include "compacter/nn/cross_entropy.h"
#include "compacter/nn/exp_approx.h"

#include "support/tensor_near.h"

namespace compacter {
namespace {

// The loss and its gradient (for dloss = 1) in double, from the definitions.
std::pair<double, torch::Tensor> reference(const torch::Tensor& logits, const torch::Tensor& labels,
                                           int64_t ignore = -100) {
  const torch::Tensor x = logits.to(torch::kDouble);
  const torch::Tensor keep = labels != ignore;
  const int64_t kept = keep.sum().item<int64_t>();
  const torch::Tensor safe = torch::where(keep, labels, torch::zeros_like(labels));
  const torch::Tensor lse = torch::logsumexp(x, 1);
  const torch::Tensor picked = x.gather(1, safe.unsqueeze(1)).squeeze(1);
  const double loss = ((lse - picked) * keep).sum().item<double>() / static_cast<double>(kept);
  torch::Tensor grad = torch::softmax(x, 1);
  grad.scatter_add_(1, safe.unsqueeze(1), -torch::ones({x.size(0), 1}, torch::kDouble));
  grad = grad * keep.unsqueeze(1) / static_cast<double>(kept);
  return {loss, grad};
}

TEST(CrossEntropy, EqualsTheDefinitionAndLibtorch) {
  const int threads = at::get_num_threads();
  at::set_num_threads(4);
  torch::manual_seed(4);
  for (const double spread : {1.0, 30.0}) {
    for (const int64_t vocab : {7, 16, 32128}) {
      torch::Tensor logits = (torch::randn({37, vocab}) * spread).requires_grad_(true);
      torch::Tensor labels = torch::randint(0, vocab, {37}, torch::kLong);
      labels.slice(0, 3, 9).fill_(-100);
      const torch::Tensor loss = nn::cross_entropy(logits, labels);
      const auto [want, want_grad] = reference(logits.detach(), labels);
      EXPECT_NEAR(loss.item<double>(), want, 2e-6 * std::abs(want) + 1e-7)
          << spread << " " << vocab;
      loss.backward(torch::full({}, 3.0));
      // The label's entry, (p - 1) * 3 / kept, cancels where p is near 1: its error is a few ulp
      // of 1 times 3 / kept (~0.1).
      EXPECT_TENSOR_NEAR(logits.grad(), 3.0 * want_grad, 2e-7, 3e-5);
      // libtorch's fp32 operators, to their rounding.
      const torch::Tensor torch_loss = torch::nn::functional::cross_entropy(
          logits.detach(), labels,
          torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
      EXPECT_NEAR(loss.item<double>(), torch_loss.item<double>(), 4e-6 * std::abs(want) + 1e-7);
      EXPECT_EQ(loss.scalar_type(), torch::kFloat32);
      EXPECT_EQ(loss.dim(), 0);
    }
  }
  at::set_num_threads(threads);
}

TEST(CrossEntropy, MaskedLargeAndNonFiniteLogits) {
  // The lowest float (a masked logit) contributes nothing; the label's own row still counts.
  torch::Tensor logits = torch::randn({3, 40});
  logits.index_put_({0, torch::indexing::Slice(0, 20)}, std::numeric_limits<float>::lowest());
  logits.index_put_({1, 5}, 80.0f);
  const torch::Tensor labels = torch::tensor({30, 5, 2}, torch::kLong);
  EXPECT_NEAR(nn::cross_entropy(logits, labels).item<double>(), reference(logits, labels).first,
              1e-6);
  logits.index_put_({2, 3}, std::nanf(""));
  EXPECT_TRUE(std::isnan(nn::cross_entropy(logits, labels).item<float>()));
}

TEST(CrossEntropy, EveryRowIgnoredIsNanWithAZeroGradient) {
  torch::Tensor logits = torch::randn({4, 9}, torch::requires_grad());
  const torch::Tensor labels = torch::full({4}, -100, torch::kLong);
  const torch::Tensor loss = nn::cross_entropy(logits, labels);
  EXPECT_TRUE(std::isnan(loss.item<float>()));
  loss.backward();
  EXPECT_TRUE(torch::equal(logits.grad(), torch::zeros({4, 9})));
  // Another ignore_index.
  const torch::Tensor other = torch::tensor({1, 7, 7, 0}, torch::kLong);
  EXPECT_NEAR(nn::cross_entropy(logits.detach(), other, 7).item<double>(),
              reference(logits.detach(), other, 7).first, 1e-6);
}

TEST(CrossEntropy, ALabelOutsideTheVocabularyIsRefusedByRow) {
  const torch::Tensor logits = torch::randn({3, 10});
  try {
    nn::cross_entropy(logits, torch::tensor({1, 10, -100}, torch::kLong));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label 10 of row 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(nn::cross_entropy(logits, torch::tensor({1, -1, 0}, torch::kLong)), Error);
  EXPECT_THROW(nn::cross_entropy(logits, torch::tensor({1, 2}, torch::kLong)), Error);
}

TEST(CrossEntropy, OtherDtypesAreLibtorchs) {
  const torch::Tensor logits = torch::randn({5, 11}, torch::kDouble);
  const torch::Tensor labels = torch::tensor({1, 2, -100, 4, 10}, torch::kLong);
  EXPECT_TRUE(torch::equal(
      nn::cross_entropy(logits, labels),
      torch::nn::functional::cross_entropy(
          logits, labels, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100))));
}

// Decoding's chosen-token log-probability against log_softmax in double, gathered: rows of
// t5's vocabulary and of odd widths (the partial sums' tail), masked (-inf, logits processors'
// bans) and large logits, a NaN row, and chosen tokens outside the vocabulary refused by row.
TEST(LogSoftmaxAt, EqualsTheGatheredLogSoftmaxInDouble) {
  torch::manual_seed(9);
  for (int64_t n : {32128, 17, 1}) {
    SCOPED_TRACE(n);
    torch::Tensor scores = torch::randn({6, n}) * 4;
    scores[1] *= 20;  // logits up to ~+-300
    if (n > 2) scores[2].narrow(0, 0, n / 2).fill_(-std::numeric_limits<float>::infinity());
    const torch::Tensor chosen = torch::randint(n / 2, n, {6}, torch::kLong);
    const torch::Tensor got = nn::log_softmax_at(scores, chosen);
    const torch::Tensor want =
        torch::log_softmax(scores.to(torch::kDouble), -1).gather(1, chosen.unsqueeze(1)).squeeze(1);
    ASSERT_EQ(got.scalar_type(), torch::kFloat32);
    for (int64_t r = 0; r < 6; ++r)
      EXPECT_NEAR(got[r].item<double>(), want[r].item<double>(),
                  2e-6 * std::max(1.0, std::abs(want[r].item<double>())))
          << "row " << r;
  }
  torch::Tensor nan_row = torch::randn({2, 40});
  nan_row[1][7] = std::numeric_limits<float>::quiet_NaN();
  const torch::Tensor lp = nn::log_softmax_at(nan_row, torch::tensor({3, 3}, torch::kLong));
  EXPECT_FALSE(std::isnan(lp[0].item<float>()));
  EXPECT_TRUE(std::isnan(lp[1].item<float>()));
  try {
    nn::log_softmax_at(torch::randn({3, 10}), torch::tensor({1, 2, 10}, torch::kLong));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 2, 10"), std::string::npos) << e.what();
  }
  EXPECT_THROW(nn::log_softmax_at(torch::randn({3, 10}), torch::tensor({1, 2}, torch::kLong)),
               Error);
  // Other dtypes: libtorch's expression, in float32.
  const torch::Tensor d = torch::randn({3, 9}, torch::kDouble);
  const torch::Tensor c = torch::tensor({0, 4, 8}, torch::kLong);
  EXPECT_TRUE(torch::equal(
      nn::log_softmax_at(d, c),
      torch::log_softmax(d, -1).gather(1, c.unsqueeze(1)).squeeze(1).to(torch::kFloat32)));
}

TEST(ExpApprox, WithinTwoUlpOfExp) {
  double worst = 0.0;
  int64_t checked = 0;
  for (float x = -87.3f; x < 88.0f; x += 0.00137f, ++checked) {
    const double want = std::exp(static_cast<double>(x));
    const auto w = static_cast<float>(want);
    const double ulp = std::nextafter(w, std::numeric_limits<float>::infinity()) - w;
    worst = std::max(worst, std::abs(nn::exp_approx(x) - want) / ulp);
  }
  EXPECT_GT(checked, 100000);
  EXPECT_LE(worst, 2.0);
  EXPECT_EQ(nn::exp_approx(0.0f), 1.0f);
  EXPECT_EQ(nn::exp_approx(-100.0f), 0.0f);
  EXPECT_EQ(nn::exp_approx(std::numeric_limits<float>::lowest()), 0.0f);
  EXPECT_EQ(nn::exp_approx(89.0f), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(nn::exp_approx(std::nanf(""))));
}

}  // namespace
}  // namespace compacter

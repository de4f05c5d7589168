// Sampling: a seed reproduces a run, and the first tokens of many samples follow the softmax of
// the warped logits, computed here by hand from a teacher-forced pass (temperature, top-k,
// top-p and typical filtering written as plain loops). Statistical check: Pearson's chi-square
// over the tokens whose expected count is >= 5 (the rest pooled), rejected above the 0.999
// quantile (Wilson-Hilferty), i.e. a false-alarm rate of 1e-3 per configuration; the seed is
// fixed, so the outcome is deterministic. Filtered tokens must never be drawn.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "compacter/train/decoding/decode.h"
#include "support/test_support.h"
#include "support/tiny_t5.h"

namespace compacter {
namespace {

using decoding::GenerationConfig;

struct Model {
  nn::T5Model model{nullptr};
  torch::Tensor ids, mask;
};

Model make_model() {
  Model m;
  testing::TinyT5 shape;
  shape.vocab = 24;
  shape.d_model = 16;
  shape.d_kv = 4;
  shape.heads = 4;
  shape.d_ff = 24;
  m.model = testing::tiny_t5(shape, 31);
  {
    // Logits spread over a few units, so that the filters cut somewhere interesting.
    torch::NoGradGuard g;
    m.model->shared->weight.mul_(1.5);
  }
  m.ids = torch::tensor({5, 9, 3, 17, 1}, torch::kLong).unsqueeze(0);
  m.mask = torch::ones({1, 5}, torch::kLong);
  return m;
}

// The first decoding step's logits (teacher-forced, no cache), in double.
std::vector<double> first_logits(Model& m) {
  torch::NoGradGuard g;
  m.model->eval();
  torch::Tensor d = torch::zeros({1, 1}, torch::kLong);
  torch::Tensor l = m.model->forward(m.ids, m.mask, d, {}).logits[0][0].to(torch::kDouble);
  return std::vector<double>(l.data_ptr<double>(), l.data_ptr<double>() + l.numel());
}

std::vector<double> softmax(const std::vector<double>& x) {
  double top = -INFINITY;
  for (double v : x) top = std::max(top, v);
  std::vector<double> p(x.size());
  double z = 0;
  for (size_t i = 0; i < x.size(); ++i) z += (p[i] = std::isinf(x[i]) ? 0.0 : std::exp(x[i] - top));
  for (double& v : p) v /= z;
  return p;
}

// transformers' warpers in order, by hand.
std::vector<double> expected_distribution(std::vector<double> x, double temperature, int64_t top_k,
                                          double top_p, double typical_p) {
  const size_t V = x.size();
  for (double& v : x) v /= temperature;
  std::vector<size_t> order(V);
  if (top_k > 0) {
    std::vector<double> sorted = x;
    std::sort(sorted.rbegin(), sorted.rend());
    const double kth = sorted[std::min<size_t>(top_k, V) - 1];
    for (double& v : x)
      if (v < kth) v = -INFINITY;
  }
  if (top_p < 1.0) {
    // Ascending; drop the least likely while the mass they hold (cumulative) <= 1 - top_p.
    std::vector<double> p = softmax(x);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] < p[b]; });
    double cumulative = 0;
    for (size_t i = 0; i + 1 < V; ++i) {
      cumulative += p[order[i]];
      if (cumulative <= 1.0 - top_p) x[order[i]] = -INFINITY;
    }
  }
  if (typical_p < 1.0) {
    std::vector<double> p = softmax(x);
    double entropy = 0;
    for (double v : p)
      if (v > 0) entropy -= v * std::log(v);
    std::vector<double> shifted(V);
    for (size_t i = 0; i < V; ++i)
      shifted[i] = p[i] > 0 ? std::abs(-std::log(p[i]) - entropy) : INFINITY;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return shifted[a] < shifted[b]; });
    double cumulative = 0;
    size_t last = 0;  // the number of sorted tokens whose cumulative mass stays below typical_p
    for (size_t i = 0; i < V; ++i) {
      cumulative += p[order[i]];
      if (cumulative < typical_p) last = i + 1;
    }
    last = std::min(last, V - 1);
    const double cut = shifted[order[last]];
    for (size_t i = 1; i < V; ++i)
      if (shifted[order[i]] > cut) x[order[i]] = -INFINITY;
  }
  return softmax(x);
}

// The 0.999 quantile of chi-square with `df` degrees of freedom (Wilson-Hilferty).
double chi_square_999(double df) {
  const double z = 3.090232;  // the standard normal's 0.999 quantile
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

TEST(Sampling, SeedReproducesAndSeedsDiffer) {
  Model m = make_model();
  GenerationConfig c = decoding::from_model_config(m.model->config());
  c.do_sample = true;
  c.max_new_tokens = 6;
  c.num_return_sequences = 8;
  c.seed = 11;
  const auto a = decoding::generate(*m.model, m.ids, m.mask, c);
  const auto b = decoding::generate(*m.model, m.ids, m.mask, c);
  c.seed = 12;
  const auto other = decoding::generate(*m.model, m.ids, m.mask, c);
  ASSERT_EQ(a[0].size(), 8u);
  bool differs = false;
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(a[0][i].tokens, b[0][i].tokens);
    EXPECT_EQ(a[0][i].token_logprobs, b[0][i].token_logprobs);
    differs = differs || a[0][i].tokens != other[0][i].tokens;
    double sum = 0;
    for (double x : a[0][i].token_logprobs) sum += x;
    EXPECT_NEAR(sum, a[0][i].score, 1e-9);
  }
  EXPECT_TRUE(differs) << "seeds 11 and 12 drew the same 8 sequences";
}

TEST(Sampling, FirstTokenFrequenciesFollowTheWarpedSoftmax) {
  Model m = make_model();
  const std::vector<double> logits = first_logits(m);
  struct Case {
    double temperature;
    int64_t top_k;
    double top_p, typical_p;
  };
  const int64_t draws = 6000;
  for (const Case& k : {Case{1.0, 0, 1.0, 1.0}, Case{0.7, 6, 1.0, 1.0}, Case{1.5, 0, 0.8, 1.0},
                        Case{1.0, 50, 0.9, 1.0}, Case{1.0, 0, 1.0, 0.7}}) {
    SCOPED_TRACE(cat("temperature ", k.temperature, " top_k ", k.top_k, " top_p ", k.top_p,
                     " typical_p ", k.typical_p));
    GenerationConfig c = decoding::from_model_config(m.model->config());
    c.do_sample = true;
    c.max_new_tokens = 1;
    c.num_return_sequences = draws;
    c.temperature = k.temperature;
    c.top_k = k.top_k;
    c.top_p = k.top_p;
    c.typical_p = k.typical_p;
    c.seed = 2026;
    const auto out = decoding::generate(*m.model, m.ids, m.mask, c);
    const std::vector<double> p =
        expected_distribution(logits, k.temperature, k.top_k, k.top_p, k.typical_p);
    std::vector<int64_t> counts(p.size(), 0);
    for (const auto& s : out[0]) ++counts.at(s.tokens.at(0));
    double chi2 = 0, pooled_expected = 0, pooled_seen = 0;
    int64_t cells = 0, kept = 0;
    for (size_t t = 0; t < p.size(); ++t) {
      if (p[t] == 0.0) {
        EXPECT_EQ(counts[t], 0) << "token " << t << " was filtered out but drawn";
        continue;
      }
      ++kept;
      const double e = p[t] * draws;
      if (e < 5) {
        pooled_expected += e;
        pooled_seen += counts[t];
        continue;
      }
      chi2 += (counts[t] - e) * (counts[t] - e) / e;
      ++cells;
    }
    if (pooled_expected > 0) {
      chi2 += (pooled_seen - pooled_expected) * (pooled_seen - pooled_expected) / pooled_expected;
      ++cells;
    }
    ASSERT_GE(cells, 2) << "too few tokens kept for a test";
    EXPECT_LT(chi2, chi_square_999(static_cast<double>(cells - 1)))
        << "chi-square " << chi2 << " over " << cells << " cells (" << kept << " tokens kept)";
  }
}

}  // namespace
}  // namespace compacter

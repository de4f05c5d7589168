// PPMI word vectors (pretrain/embeddings.h): the matrix against a naive count-and-formula loop on
// a small corpus, and the vectors on a corpus of two disjoint "topics", where words of one topic
// must be more alike than words of different topics.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <random>

#include "compacter/pretrain/embeddings.h"

namespace compacter {
namespace {

TEST(PretrainEmbeddings, PpmiMatchesNaiveFormula) {
  const std::vector<std::vector<int64_t>> chunks = {{0, 1, 2, 1}, {2, 3}, {3, 0, 9}};  // 9: skipped
  const int64_t v = 4, w = 2;
  double c[4][4] = {};
  for (const auto& ch : chunks)
    for (size_t i = 0; i < ch.size(); ++i)
      for (size_t j = i + 1; j < ch.size() && j <= i + w; ++j) {
        if (ch[i] >= v || ch[j] >= v) continue;
        c[ch[i]][ch[j]] += 1;
        c[ch[j]][ch[i]] += 1;
      }
  double total = 0, row[4] = {}, col[4] = {}, colsum = 0;
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) {
      total += c[a][b];
      row[a] += c[a][b];
      col[b] += c[a][b];
    }
  for (double& x : col) colsum += std::pow(x, 0.75);
  const torch::Tensor m = pretrain::ppmi_matrix(chunks, v, w);
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) {
      double expected = 0;
      if (c[a][b] > 0) {
        const double p_ab = c[a][b] / total, p_a = row[a] / total;
        const double p_b = std::pow(col[b], 0.75) / colsum;
        expected = std::max(0.0, std::log(p_ab / (p_a * p_b)));
      }
      EXPECT_NEAR(m[a][b].item<double>(), expected, 1e-12) << a << "," << b;
    }
}

TEST(PretrainEmbeddings, TopicsSeparate) {
  std::mt19937_64 rng(1);
  std::vector<std::vector<int64_t>> chunks;
  for (int n = 0; n < 400; ++n) {
    const int64_t base = n % 2 == 0 ? 0 : 5;  // topic A: 0..4, topic B: 5..9; 10 never occurs
    std::vector<int64_t> chunk;
    for (int i = 0; i < 20; ++i) chunk.push_back(base + static_cast<int64_t>(rng() % 5));
    chunks.push_back(chunk);
  }
  const torch::Tensor e = pretrain::ppmi_embeddings(chunks, 11, 4, 3, 0);
  ASSERT_EQ(e.sizes(), (torch::IntArrayRef{11, 4}));
  EXPECT_EQ(e[10].abs().sum().item<double>(), 0.0);
  EXPECT_NEAR(e.narrow(0, 0, 10).norm(2, 1).mean().item<double>(), 2.0, 1e-5);  // sqrt(4)
  auto cosine = [&](int a, int b) {
    return (torch::dot(e[a], e[b]) / (e[a].norm() * e[b].norm())).item<double>();
  };
  double within = 1, across = -1;
  for (int a = 0; a < 10; ++a)
    for (int b = a + 1; b < 10; ++b) {
      if ((a < 5) == (b < 5))
        within = std::min(within, cosine(a, b));
      else
        across = std::max(across, cosine(a, b));
    }
  EXPECT_GT(within, across + 0.5) << "within-topic " << within << ", across " << across;
}

}  // namespace
}  // namespace compacter

// PPMI word vectors by randomised SVD (see embeddings.h).
#include "compacter/pretrain/embeddings.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "compacter/core/error.h"

namespace compacter::pretrain {

torch::Tensor ppmi_matrix(const std::vector<std::vector<int64_t>>& chunks, int64_t vocab,
                          int64_t window) {
  check(vocab >= 1 && window >= 1, "PPMI needs a vocabulary and a window of at least 1");
  torch::Tensor counts = torch::zeros({vocab, vocab}, torch::kDouble);
  double* c = counts.data_ptr<double>();
  for (const auto& chunk : chunks) {
    const int64_t n = static_cast<int64_t>(chunk.size());
    for (int64_t i = 0; i < n; ++i) {
      const int64_t a = chunk[static_cast<size_t>(i)];
      if (a < 0 || a >= vocab) continue;
      for (int64_t j = i + 1; j <= std::min(n - 1, i + window); ++j) {
        const int64_t b = chunk[static_cast<size_t>(j)];
        if (b < 0 || b >= vocab) continue;
        c[a * vocab + b] += 1.0;
        c[b * vocab + a] += 1.0;
      }
    }
  }
  const double total = counts.sum().item<double>();
  check(total > 0, "PPMI: the corpus has no token pairs within the window");
  torch::Tensor rows = counts.sum(1, /*keepdim=*/true);           // P(w) * total
  torch::Tensor ctx = counts.sum(0, /*keepdim=*/true).pow(0.75);  // smoothed P(c)
  ctx = ctx / ctx.sum() * total;
  torch::Tensor pmi = (counts * total / (rows * ctx)).log();
  return torch::where(counts > 0, pmi.clamp_min(0.0), torch::zeros_like(pmi));
}

torch::Tensor ppmi_embeddings(const std::vector<std::vector<int64_t>>& chunks, int64_t vocab,
                              int64_t dim, int64_t window, uint64_t seed) {
  check(dim >= 1 && dim <= vocab, "PPMI embeddings: dimension ", dim, " must be in [1, ", vocab,
        "]");
  const torch::Tensor m = ppmi_matrix(chunks, vocab, window);
  // Randomised range finder with two power iterations, then the SVD of the small projection.
  const int64_t k = std::min(vocab, dim + 16);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  torch::Tensor omega = at::normal(0.0, 1.0, {vocab, k}, gen, torch::kDouble);
  torch::Tensor q = std::get<0>(torch::linalg_qr(torch::mm(m, omega)));
  for (int it = 0; it < 2; ++it) q = std::get<0>(torch::linalg_qr(torch::mm(m, q)));
  auto [ub, s, vh] = torch::linalg_svd(torch::mm(q.t(), m), /*full_matrices=*/false);
  torch::Tensor u = torch::mm(q, ub).narrow(1, 0, dim);
  torch::Tensor e = u * s.narrow(0, 0, dim).sqrt().unsqueeze(0);
  // Scale the rows of tokens that occur to a mean norm of sqrt(dim).
  torch::Tensor norms = e.norm(2, 1);
  torch::Tensor seen = m.abs().sum(1) > 0;
  const double mean = norms.masked_select(seen).mean().item<double>();
  if (mean > 0) e = e * (std::sqrt(static_cast<double>(dim)) / mean);
  e.masked_fill_(seen.logical_not().unsqueeze(1), 0.0);
  return e.to(torch::kFloat);
}

}  // namespace compacter::pretrain

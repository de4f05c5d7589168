// Count-based word vectors as the starting point of a pretrained embedding table: the positive
// pointwise mutual information (PPMI) of token co-occurrence within a window over the packed
// corpus, with the context distribution smoothed by ^0.75 (Levy, Goldberg & Dagan, 2015),
// factorised to d_model dimensions by a randomised SVD (Halko, Martinsson & Tropp, 2011):
// E = U_k sqrt(S_k). Rows are then scaled so that their mean norm is sqrt(d_model), the norm of
// T5's N(0, 1) initialisation. Seconds of CPU for a vocabulary of a few thousand rows, it gives
// the tied embedding table word similarity before span corruption starts (see docs/
// pretraining-data.md). Not part of T5's recipe: `compacter pretrain --init-embeddings ppmi`.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace compacter::pretrain {

// vocab x vocab PPMI (float64): counts of (a, b) pairs at distance 1..window within each chunk,
// symmetric; ids outside [0, vocab) are ignored.
torch::Tensor ppmi_matrix(const std::vector<std::vector<int64_t>>& chunks, int64_t vocab,
                          int64_t window);

// vocab x dim embeddings (float32) from ppmi_matrix; rows of tokens that never occur are zero.
torch::Tensor ppmi_embeddings(const std::vector<std::vector<int64_t>>& chunks, int64_t vocab,
                              int64_t dim, int64_t window, uint64_t seed);

}  // namespace compacter::pretrain

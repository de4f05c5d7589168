// nn::AttentionCache (a self-attention cache growing in place) against torch::cat and
// Tensor::index_select, the operations it replaces: appends across several new rooms, rows
// reordered with repeats, views narrowed or replaced by other code, copies of a cache, and the
// gradients when autograd records. That it writes in place is checked through the storage its
// views point at.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <utility>
#include <vector>

#include "compacter/nn/attention_cache.h"

namespace compacter::nn {
namespace {

constexpr int64_t kRows = 3, kHeads = 2, kDim = 5;

torch::Tensor positions(int64_t n, int64_t rows = kRows) {
  return torch::randn({rows, kHeads, n, kDim});
}

// A cache and the keys/values torch::cat makes of the same appends.
struct Pair {
  AttentionCache cache;
  torch::Tensor key, value;
  void append(int64_t n) {
    // Fresh positions as attention makes them: the heads' view of a [B, n, H * d] projection.
    const torch::Tensor k = torch::randn({key.size(0), n, kHeads * kDim})
                                .view({key.size(0), n, kHeads, kDim})
                                .transpose(1, 2);
    const torch::Tensor v = positions(n, key.size(0));
    cache.append(k, v);
    key = torch::cat({key, k}, 2);
    value = torch::cat({value, v}, 2);
  }
  // The cache's views and the reference narrowed alike (other code trimming the cache).
  void narrow(int64_t dim, int64_t start, int64_t length) {
    cache.key = cache.key.narrow(dim, start, length);
    cache.value = cache.value.narrow(dim, start, length);
    key = key.narrow(dim, start, length);
    value = value.narrow(dim, start, length);
  }
  void expect_same() const {
    ASSERT_EQ(cache.key.sizes(), key.sizes());
    EXPECT_TRUE(torch::equal(cache.key, key));
    EXPECT_TRUE(torch::equal(cache.value, value));
  }
};

Pair started(int64_t n) {
  Pair p;
  p.key = positions(0);
  p.value = positions(0);
  p.append(n);
  return p;
}

TEST(AttentionCache, AppendsAsConcatenationDoes) {
  torch::manual_seed(1);
  torch::NoGradGuard no_grad;
  Pair p = started(1);
  p.expect_same();
  // Past the first room (kMinRoom) and several grown ones, one and several positions at a time.
  for (int64_t n : {1, 1, 3, 1, 11, 1, 1, 7, 1, 30, 1, 1, 2, 64, 1}) {
    p.append(n);
    p.expect_same();
  }
  EXPECT_GT(p.key.size(2), 4 * AttentionCache::kMinRoom);
}

TEST(AttentionCache, WritesInPlaceWhileTheRoomLasts) {
  torch::manual_seed(2);
  torch::NoGradGuard no_grad;
  Pair p = started(1);
  const void* room = p.cache.key.data_ptr();
  const torch::Tensor early = p.cache.key;  // a view another holder kept, one position long
  const torch::Tensor early_copy = early.clone();
  int64_t moved = 0;
  for (int i = 0; i < 40; ++i) {
    const int64_t before = p.cache.key.size(2);
    p.append(1);
    if (p.cache.key.data_ptr() != room) {
      ++moved;
      room = p.cache.key.data_ptr();
      // Only when the room was full (its capacity: kMinRoom, then 1.5x what was needed: 25, 39).
      EXPECT_TRUE(before == AttentionCache::kMinRoom || before == 25 || before == 39)
          << "a new room at length " << before;
    }
  }
  p.expect_same();
  EXPECT_EQ(moved, 3);  // at lengths 16, 25 and 39, over 41 positions
  EXPECT_TRUE(torch::equal(early, early_copy)) << "a later step wrote into an earlier view";
}

TEST(AttentionCache, SelectRowsAsIndexSelectThenAppendsInPlace) {
  torch::manual_seed(3);
  torch::NoGradGuard no_grad;
  Pair p = started(5);
  for (const std::vector<int64_t>& rows :
       std::vector<std::vector<int64_t>>{{2, 0, 0}, {1, 1, 2, 0}, {3}, {0, 0}}) {
    const torch::Tensor index = torch::tensor(rows, torch::kLong);
    p.cache.select_rows(index);
    p.key = p.key.index_select(0, index);
    p.value = p.value.index_select(0, index);
    p.expect_same();
    const void* room = p.cache.key.data_ptr();
    p.append(1);
    p.expect_same();
    EXPECT_EQ(p.cache.key.data_ptr(), room) << "the step after a reorder copied the cache";
  }
}

TEST(AttentionCache, ViewsNarrowedOrReplacedByOtherCode) {
  torch::manual_seed(4);
  torch::NoGradGuard no_grad;
  Pair p = started(6);
  // Leading positions dropped by narrowing (the server's ragged rows): still in the room.
  p.narrow(2, 2, 4);
  const void* start = p.cache.key.data_ptr();
  p.append(2);
  p.expect_same();
  EXPECT_EQ(p.cache.key.data_ptr(), start);
  // Replaced by tensors of their own (merged caches): copied once into a new room.
  p.cache.key = p.key.clone();
  p.cache.value = p.value.clone();
  p.append(1);
  p.expect_same();
  // Replaced by a view of the room that is not a run of positions (its first two rows).
  p.narrow(0, 0, 2);
  p.append(3);
  p.expect_same();
}

TEST(AttentionCache, ACopyNeverSharesItsRoom) {
  torch::manual_seed(5);
  torch::NoGradGuard no_grad;
  Pair a = started(3);
  Pair b = a;  // the cache's copy constructor
  Pair c = started(1);
  c = a;  // its copy assignment, over a cache with a room of its own
  for (int i = 0; i < 20; ++i) {
    a.append(1);
    b.append(2);
    c.append(1);
  }
  a.expect_same();
  b.expect_same();
  c.expect_same();
}

TEST(AttentionCache, GradientsAsConcatenation) {
  torch::manual_seed(6);
  std::vector<torch::Tensor> keys, values;
  AttentionCache cache;
  for (int64_t n : {2, 1, 1, 20}) {
    keys.push_back(positions(n).requires_grad_(true));
    values.push_back(positions(n).requires_grad_(true));
    cache.append(keys.back(), values.back());
  }
  const torch::Tensor weight_k = torch::randn(cache.key.sizes());
  const torch::Tensor weight_v = torch::randn(cache.value.sizes());
  ((cache.key * weight_k).sum() + (cache.value * weight_v).sum()).backward();
  // d/dx sum(cat(x...) * w) = the matching positions of w.
  int64_t at = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const int64_t n = keys[i].size(2);
    EXPECT_TRUE(torch::equal(keys[i].grad(), weight_k.narrow(2, at, n))) << "append " << i;
    EXPECT_TRUE(torch::equal(values[i].grad(), weight_v.narrow(2, at, n))) << "append " << i;
    at += n;
  }
}

TEST(AttentionCache, AShortenedViewNeverWritesOverPositionsOthersRead) {
  torch::manual_seed(7);
  torch::NoGradGuard no_grad;
  Pair p = started(3);
  const torch::Tensor kept = p.cache.key;  // another holder of positions 0 .. 2
  const torch::Tensor kept_values = kept.clone();
  const AttentionCache snapshot = p.cache;
  // The last position dropped (a rollback): the next one must not land where position 2 was.
  p.narrow(2, 0, 2);
  p.append(1);
  p.expect_same();
  EXPECT_TRUE(torch::equal(kept, kept_values));
  EXPECT_TRUE(torch::equal(snapshot.key, kept_values));
}

TEST(AttentionCache, OtherRowsThrowAsConcatenationDoes) {
  torch::NoGradGuard no_grad;
  for (const auto& [cached, fresh] : std::vector<std::pair<int64_t, int64_t>>{{4, 1}, {1, 4}}) {
    AttentionCache c;
    c.append(positions(2, cached), positions(2, cached));
    EXPECT_ANY_THROW(c.append(positions(1, fresh), positions(1, fresh)))
        << cached << " cached rows, " << fresh << " new";
  }
}

// Autograd may save views of the cache (here the keys of a product with a query that needs a
// gradient, while the keys themselves need none): later steps must not change them.
TEST(AttentionCache, UnderGradModeLaterStepsLeaveSavedViewsIntact) {
  torch::manual_seed(8);
  AttentionCache cache;
  const torch::Tensor query = torch::randn({kRows, kHeads, 1, kDim}).requires_grad_(true);
  std::vector<torch::Tensor> keys;
  torch::Tensor loss = torch::zeros({});
  const int steps = 4;
  for (int i = 0; i < steps; ++i) {
    keys.push_back(positions(1));
    cache.append(keys.back(), positions(1));
    loss = loss + torch::matmul(query, cache.key.transpose(-1, -2)).sum();
  }
  loss.backward();
  // d/dq of sum over steps i of sum_{t <= i} q . k_t = sum_t (steps - t) k_t.
  torch::Tensor expected = torch::zeros_like(query);
  for (int t = 0; t < steps; ++t) expected += (steps - t) * keys[static_cast<size_t>(t)];
  EXPECT_TRUE(torch::allclose(query.grad(), expected, 1e-5, 1e-5));
}

}  // namespace
}  // namespace compacter::nn

// Dynamic padding and length-grouped batching (see batching.h; spec §4.5).
#include "compacter/tasks/batching.h"

#include <algorithm>

#include "compacter/core/error.h"

namespace compacter::tasks {

namespace {

torch::Tensor pad(const std::vector<const std::vector<int64_t>*>& rows, int64_t value) {
  size_t longest = 0;
  for (const auto* r : rows) longest = std::max(longest, r->size());
  torch::Tensor out = torch::full(
      {static_cast<int64_t>(rows.size()), static_cast<int64_t>(longest)}, value, torch::kLong);
  auto a = out.accessor<int64_t, 2>();
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows[i]->size(); ++j)
      a[static_cast<int64_t>(i)][static_cast<int64_t>(j)] = (*rows[i])[j];
  return out;
}

}  // namespace

Batch collate(const std::vector<EncodedExample>& items, const std::vector<size_t>& indices) {
  check(!indices.empty(), "collate: empty batch");
  std::vector<const std::vector<int64_t>*> src, tgt;
  for (size_t i : indices) {
    check(i < items.size(), "collate: example ", i, " out of range (", items.size(), ")");
    src.push_back(&items[i].source_ids);
    tgt.push_back(&items[i].target_ids);
  }
  Batch b;
  b.input_ids = pad(src, 0);
  b.attention_mask = torch::zeros_like(b.input_ids);
  for (size_t i = 0; i < src.size(); ++i)
    b.attention_mask[static_cast<int64_t>(i)]
        .narrow(0, 0, static_cast<int64_t>(src[i]->size()))
        .fill_(1);
  b.labels = pad(tgt, -100);
  b.indices = indices;
  return b;
}

std::vector<std::vector<size_t>> make_batches(const std::vector<EncodedExample>& items,
                                              int64_t batch_size, bool shuffle, bool by_length,
                                              uint64_t seed) {
  check(batch_size > 0, "batch size must be positive, got ", batch_size);
  const auto n = static_cast<int64_t>(items.size());
  std::vector<size_t> order(items.size());
  if (shuffle) {
    const std::vector<int64_t> p = permutation(n, seed);
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<size_t>(p[i]);
  } else {
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  }
  if (by_length) {
    const size_t window = static_cast<size_t>(batch_size) * 50;
    for (size_t start = 0; start < order.size(); start += window) {
      const auto end =
          order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + window));
      std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(start), end,
                       [&](size_t a, size_t b) {
                         return items[a].source_ids.size() > items[b].source_ids.size();
                       });
    }
  }
  std::vector<std::vector<size_t>> batches;
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size))
    batches.emplace_back(
        order.begin() + static_cast<std::ptrdiff_t>(start),
        order.begin() + static_cast<std::ptrdiff_t>(
                            std::min(order.size(), start + static_cast<size_t>(batch_size))));
  if (by_length && shuffle && batches.size() > 1) {
    const std::vector<int64_t> p = permutation(static_cast<int64_t>(batches.size()), seed + 1);
    std::vector<std::vector<size_t>> shuffled;
    for (int64_t k : p) shuffled.push_back(std::move(batches[static_cast<size_t>(k)]));
    batches = std::move(shuffled);
  }
  return batches;
}

}  // namespace compacter::tasks

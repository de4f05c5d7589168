// Collation with dynamic padding (spec §4.5): each batch is padded to its own longest sequence,
// sources with 0 (T5's pad id), labels with -100 (ignored by the loss). Optional length grouping
// puts examples of similar source length together, like Hugging Face's group_by_length.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "compacter/tasks/tasks.h"

namespace compacter::tasks {

struct Batch {
  torch::Tensor input_ids;       // [B, S] int64, padded with 0
  torch::Tensor attention_mask;  // [B, S] int64, 1 on tokens, 0 on padding
  torch::Tensor labels;          // [B, T] int64, padded with -100
  std::vector<size_t> indices;   // which examples, in row order
};

// The examples `indices` of `items` as one padded batch (CPU tensors).
Batch collate(const std::vector<EncodedExample>& items, const std::vector<size_t>& indices);

// Batches of indices into `items` (the last one may be smaller; nothing is dropped).
// shuffle: a permutation drawn with `seed` (a fresh generator, like the splits) first;
// by_length: then, within windows of 50 batches, sort by source length (longest first), and
// shuffle the order of the batches when `shuffle` is set.
std::vector<std::vector<size_t>> make_batches(const std::vector<EncodedExample>& items,
                                              int64_t batch_size, bool shuffle, bool by_length,
                                              uint64_t seed);

}  // namespace compacter::tasks

// Per-row variants of a model's tensors: one batch whose rows use different fine-tunings of one
// base (a server's mixed-adapter batches). The model holds a RowVariants (T5ModelImpl::rows):
// which variant each row of the batch being run uses, kept in step with the rows by whoever
// repeats, drops or reorders them (decoding's DecoderState). A RowTable is a tensor with one
// value per variant ([V, F...]); the layers that accept one (RMSNorm's weight and bias, a
// linear layer's and the output layer's bias, the scale points) use each row's own value in
// place of their single tensor. Elementwise, each row's result is what the single tensor would
// give it. Nothing here names a method: the variants' hooks are dispatched by whoever installs
// them (they read RowVariants::groups).
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace compacter::nn {

class RowVariants {
 public:
  // The variant of each row ([R] ids in 0 .. variants-1).
  void set(std::vector<int64_t> variant_of_row);
  // Each row repeated n times in place (row r becomes rows r*n .. r*n+n-1), as decoding repeats
  // an input's encoder states for its beams or samples.
  void repeat_interleave(int64_t n);
  // Keeps rows `index` ([R'] ids into the current rows, in the new order).
  void keep(const torch::Tensor& index);

  bool active() const { return !variant_.empty(); }
  int64_t rows() const { return static_cast<int64_t>(variant_.size()); }
  const std::vector<int64_t>& variant_of_row() const { return variant_; }
  // [R] long (CPU): the variant of each row.
  const torch::Tensor& index() const { return index_; }
  // The rows of each variant present, by variant: (variant, [n] long row ids), rows ascending.
  const std::vector<std::pair<int64_t, torch::Tensor>>& groups() const { return groups_; }
  // The index on `device` (cached per device).
  const torch::Tensor& index_on(const torch::Device& device) const;

 private:
  void rebuild();
  std::vector<int64_t> variant_;
  torch::Tensor index_;
  mutable torch::Tensor device_index_;
  std::vector<std::pair<int64_t, torch::Tensor>> groups_;
};

// One value per variant: table [V, F...]. for_rows(x) is [R, 1, ..., 1, F...] for x [R, ..., F...]
// (R: the rows of the model's RowVariants, which must match x's first dimension).
class RowTable {
 public:
  RowTable(std::shared_ptr<const RowVariants> rows, torch::Tensor table);
  torch::Tensor for_rows(const torch::Tensor& x) const;
  const torch::Tensor& table() const { return table_; }

 private:
  std::shared_ptr<const RowVariants> rows_;
  torch::Tensor table_;
};

// `value` when `rows` is null, else rows->for_rows(x).
torch::Tensor value_for_rows(const torch::Tensor& value, const std::shared_ptr<RowTable>& rows,
                             const torch::Tensor& x);

}  // namespace compacter::nn

// Per-row variants of a model's tensors: see rows.h.
#include "compacter/nn/rows.h"

#include <torch/torch.h>

#include <map>

#include "compacter/core/error.h"

namespace compacter::nn {

void RowVariants::set(std::vector<int64_t> variant_of_row) {
  variant_ = std::move(variant_of_row);
  rebuild();
}

void RowVariants::repeat_interleave(int64_t n) {
  if (n <= 1 || variant_.empty()) return;
  std::vector<int64_t> out;
  out.reserve(variant_.size() * static_cast<size_t>(n));
  for (int64_t v : variant_)
    for (int64_t i = 0; i < n; ++i) out.push_back(v);
  set(std::move(out));
}

void RowVariants::keep(const torch::Tensor& index) {
  if (variant_.empty()) return;
  const torch::Tensor i = index.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t* p = i.data_ptr<int64_t>();
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(i.numel()));
  for (int64_t k = 0; k < i.numel(); ++k) {
    check(p[k] >= 0 && p[k] < rows(), "row variants: row ", p[k], " of ", rows());
    out.push_back(variant_[static_cast<size_t>(p[k])]);
  }
  set(std::move(out));
}

void RowVariants::rebuild() {
  index_ = torch::tensor(variant_, torch::kLong);
  device_index_ = torch::Tensor();
  std::map<int64_t, std::vector<int64_t>> by_variant;
  for (size_t r = 0; r < variant_.size(); ++r)
    by_variant[variant_[r]].push_back(static_cast<int64_t>(r));
  groups_.clear();
  for (auto& [v, rows] : by_variant) groups_.emplace_back(v, torch::tensor(rows, torch::kLong));
}

const torch::Tensor& RowVariants::index_on(const torch::Device& device) const {
  if (device.is_cpu()) return index_;
  if (!device_index_.defined() || device_index_.device() != device)
    device_index_ = index_.to(device);
  return device_index_;
}

RowTable::RowTable(std::shared_ptr<const RowVariants> rows, torch::Tensor table)
    : rows_(std::move(rows)), table_(std::move(table)) {
  check(rows_ != nullptr && table_.dim() >= 1,
        "a row table needs row variants and a [V, ...] table");
}

torch::Tensor RowTable::for_rows(const torch::Tensor& x) const {
  check(rows_->rows() == x.size(0), "row table: the batch has ", x.size(0),
        " rows, the row variants ", rows_->rows());
  torch::Tensor t = table_.index_select(0, rows_->index_on(table_.device()));
  std::vector<int64_t> shape{t.size(0)};
  const int64_t value_dims = t.dim() - 1;
  for (int64_t d = 1; d + value_dims < x.dim(); ++d) shape.push_back(1);
  for (int64_t d = 1; d < t.dim(); ++d) shape.push_back(t.size(d));
  return t.view(shape);
}

torch::Tensor value_for_rows(const torch::Tensor& value, const std::shared_ptr<RowTable>& rows,
                             const torch::Tensor& x) {
  return rows ? rows->for_rows(x) : value;
}

}  // namespace compacter::nn

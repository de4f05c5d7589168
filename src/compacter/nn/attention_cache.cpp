// A self-attention cache that grows in place (see the header).
#include "compacter/nn/attention_cache.h"

#include <algorithm>

namespace compacter::nn {
namespace {

// Whether autograd records an operation on these tensors (either may be undefined).
bool recording(const torch::Tensor& a, const torch::Tensor& b) {
  return torch::GradMode::is_enabled() &&
         ((a.defined() && a.requires_grad()) || (b.defined() && b.requires_grad()));
}

// The first position of `view` in `room` when `view` is positions start .. start + T - 1 of
// `room` along dim 2 (the same storage, other sizes and strides, and `fresh`'s dtype) and the
// n positions of `fresh` fit after it; else -1.
int64_t room_after(const torch::Tensor& view, const torch::Tensor& room,
                   const torch::Tensor& fresh) {
  if (!view.defined() || !room.defined() || view.dim() != 4 || room.dim() != 4) return -1;
  if (!view.storage().is_alias_of(room.storage()) || view.scalar_type() != room.scalar_type() ||
      fresh.scalar_type() != room.scalar_type())
    return -1;
  for (int64_t d : {0, 1, 3})
    if (view.size(d) != room.size(d)) return -1;
  if (view.strides() != room.strides() || room.stride(2) <= 0) return -1;
  const int64_t offset = view.storage_offset() - room.storage_offset();
  if (offset < 0 || offset % room.stride(2) != 0) return -1;
  const int64_t start = offset / room.stride(2);
  return start + view.size(2) + fresh.size(2) <= room.size(2) ? start : -1;
}

// `view` followed by `fresh` along dim 2, in `room` (see AttentionCache::append).
void grow(torch::Tensor& view, torch::Tensor& room, const torch::Tensor& fresh) {
  if (recording(view, fresh)) {  // autograd's own operations, no room
    view = view.defined() ? torch::cat({view, fresh}, 2) : fresh;
    room = torch::Tensor();
    return;
  }
  const int64_t n = fresh.size(2), length = view.defined() ? view.size(2) : 0;
  int64_t start = room_after(view, room, fresh);
  if (start < 0) {  // a new room, the cached positions copied to its front
    const int64_t needed = length + n;
    const auto dtype = view.defined()
                           ? torch::promote_types(view.scalar_type(), fresh.scalar_type())
                           : fresh.scalar_type();
    const int64_t capacity = std::max(AttentionCache::kMinRoom, needed + needed / 2);
    torch::Tensor fresh_room = torch::empty({fresh.size(0), fresh.size(1), capacity, fresh.size(3)},
                                            fresh.options().dtype(dtype));
    if (length > 0) fresh_room.narrow(2, 0, length).copy_(view);
    room = fresh_room;
    start = 0;
  }
  room.narrow(2, start + length, n).copy_(fresh);
  view = room.narrow(2, start, length + n);
}

// Rows `index` of `view`, written into a new room of `room`'s capacity (at least the length).
void pick(torch::Tensor& view, torch::Tensor& room, const torch::Tensor& index) {
  if (recording(view, torch::Tensor())) {
    view = view.index_select(0, index);
    room = torch::Tensor();
    return;
  }
  const int64_t length = view.size(2);
  const int64_t capacity =
      std::max({AttentionCache::kMinRoom, length, room.defined() ? room.size(2) : int64_t{0}});
  torch::Tensor fresh_room =
      torch::empty({index.size(0), view.size(1), capacity, view.size(3)}, view.options());
  torch::Tensor picked = fresh_room.narrow(2, 0, length);
  torch::index_select_out(picked, view, 0, index);
  room = fresh_room;
  view = picked;
}

}  // namespace

AttentionCache& AttentionCache::operator=(const AttentionCache& other) {
  key = other.key;
  value = other.value;
  key_room_ = torch::Tensor();
  value_room_ = torch::Tensor();
  return *this;
}

void AttentionCache::append(const torch::Tensor& fresh_key, const torch::Tensor& fresh_value) {
  grow(key, key_room_, fresh_key);
  grow(value, value_room_, fresh_value);
}

void AttentionCache::select_rows(const torch::Tensor& index) {
  if (!key.defined()) return;
  pick(key, key_room_, index);
  pick(value, value_room_, index);
}

}  // namespace compacter::nn

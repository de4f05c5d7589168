// A self-attention cache that grows in place (see the header).
#include "compacter/nn/attention_cache.h"

#include <algorithm>

namespace compacter::nn {
namespace {

using Room = AttentionCache::Room;

// Whether `a` and `b` have the same rows, heads and width (cat's other dimensions).
bool same_other_sizes(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.dim() != 4 || b.dim() != 4) return false;
  for (int64_t d : {0, 1, 3})
    if (a.size(d) != b.size(d)) return false;
  return true;
}

// The first position of `view` in `room` when `view` is positions start .. room.end - 1 of it
// along dim 2 (the same storage, dtype, other sizes and strides), `fresh` has its rows, heads,
// width and dtype, and its n positions fit after them; else -1.
int64_t room_after(const torch::Tensor& view, const Room& room, const torch::Tensor& fresh) {
  const torch::Tensor& r = room.data;
  if (!view.defined() || !r.defined() || !same_other_sizes(view, r) || !same_other_sizes(fresh, r))
    return -1;
  if (!view.storage().is_alias_of(r.storage()) || view.scalar_type() != r.scalar_type() ||
      fresh.scalar_type() != r.scalar_type())
    return -1;
  if (view.strides() != r.strides() || r.stride(2) <= 0) return -1;
  const int64_t offset = view.storage_offset() - r.storage_offset();
  if (offset < 0 || offset % r.stride(2) != 0) return -1;
  const int64_t start = offset / r.stride(2);
  const bool at_end = start + view.size(2) == room.end;
  return at_end && room.end + fresh.size(2) <= r.size(2) ? start : -1;
}

// `view` followed by `fresh` along dim 2, in `room` (see AttentionCache::append).
void grow(torch::Tensor& view, Room& room, const torch::Tensor& fresh) {
  if (torch::GradMode::is_enabled() || (view.defined() && !same_other_sizes(view, fresh))) {
    view = view.defined() ? torch::cat({view, fresh}, 2) : fresh;  // cat's result, cat's errors
    room = Room();
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
    torch::Tensor data = torch::empty({fresh.size(0), fresh.size(1), capacity, fresh.size(3)},
                                      fresh.options().dtype(dtype));
    if (length > 0) data.narrow(2, 0, length).copy_(view);
    room = Room{data, length};
    start = 0;
  }
  room.data.narrow(2, room.end, n).copy_(fresh);
  room.end += n;
  view = room.data.narrow(2, start, length + n);
}

// Rows `index` of `view`, written into a new room of `room`'s capacity (at least the length).
void pick(torch::Tensor& view, Room& room, const torch::Tensor& index) {
  if (torch::GradMode::is_enabled() || view.dim() != 4 || index.dim() != 1) {
    view = view.index_select(0, index);
    room = Room();
    return;
  }
  const int64_t length = view.size(2);
  const int64_t capacity = std::max(
      {AttentionCache::kMinRoom, length, room.data.defined() ? room.data.size(2) : int64_t{0}});
  torch::Tensor data =
      torch::empty({index.size(0), view.size(1), capacity, view.size(3)}, view.options());
  torch::Tensor picked = data.narrow(2, 0, length);
  torch::index_select_out(picked, view, 0, index);
  room = Room{data, length};
  view = picked;
}

}  // namespace

AttentionCache& AttentionCache::operator=(const AttentionCache& other) {
  key = other.key;
  value = other.value;
  key_room_ = Room();
  value_room_ = Room();
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

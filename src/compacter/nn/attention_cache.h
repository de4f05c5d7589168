// Keys and values that decoding keeps between steps (HF's past_key_values), and how a
// self-attention cache grows: in place, into a tensor with room for later positions, so that a
// step writes only its own positions. Concatenating the whole cache at every step (torch::cat, as
// transformers' DynamicCache does, and this code before) copies O(T^2) values over T steps: at
// batch 32 and 256 new tokens that was 19% of an int8 request's time (issue #8, generation's
// own overheads).
#pragma once
#include <torch/torch.h>

namespace compacter::nn {

// One attention layer's cache: [B, H, T, d_kv] each. Self-attention's `key` and `value` are views
// of positions start .. start + T - 1 of the cache's rooms ([B, H, capacity, d_kv]), the last
// positions written there. Other code may replace `key` and `value` by any tensors meaning the
// same (rows reordered or dropped, caches merged, positions trimmed); the next step then copies
// them once into a new room unless they still end at the last position written (leading positions
// trimmed by narrowing). So a step never writes over a position that any other view may still
// read, and a copy of a cache, which gets the views but not the rooms, never shares a room.
struct AttentionCache {
  torch::Tensor key;
  torch::Tensor value;

  AttentionCache() = default;
  AttentionCache(const AttentionCache& other) : key(other.key), value(other.value) {}
  AttentionCache& operator=(const AttentionCache& other);
  AttentionCache(AttentionCache&&) = default;
  AttentionCache& operator=(AttentionCache&&) = default;

  // Appends this step's keys and values ([B, H, n, d_kv]) after the cached ones, as
  // key = torch::cat({key, fresh_key}, 2) (the same for values) computes, and throws where it
  // throws (other rows, heads or widths). With GradMode off, in place where `key` ends at the last
  // position written into this cache's room and n more fit; else into a new room with half as many
  // positions again as needed (at least kMinRoom), so T steps copy O(T) values. With GradMode on
  // (autograd may have saved views of the room), torch::cat itself.
  void append(const torch::Tensor& fresh_key, const torch::Tensor& fresh_value);

  // Keeps rows `index` (a 1-D long tensor on the cache's device; beam search's reorder, rows that
  // ended), as key = key.index_select(0, index) does; with GradMode off written into new rooms of
  // the same capacity, so the next step appends in place.
  void select_rows(const torch::Tensor& index);

  static constexpr int64_t kMinRoom = 16;

  // A tensor with room for more positions along dim 2, and one past the last position written.
  struct Room {
    torch::Tensor data;
    int64_t end = 0;
  };

 private:
  Room key_room_, value_room_;
};

}  // namespace compacter::nn

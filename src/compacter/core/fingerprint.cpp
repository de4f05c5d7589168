// File fingerprints: see fingerprint.h.
#include "compacter/core/fingerprint.h"

#include <cstring>
#include <fstream>
#include <vector>

#include "compacter/core/error.h"

namespace compacter {

uint64_t WordChecksum::partial_word() const {
  uint64_t w = 0;
  for (size_t i = partial_size_; i-- > 0;) w = (w << 8) | partial_[i];
  return w;
}

void WordChecksum::add(const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  bytes_ += size;
  while (partial_size_ > 0 && partial_size_ < 8 && size > 0) {
    partial_[partial_size_++] = *p++;
    --size;
  }
  if (partial_size_ == 8) {
    word(partial_word());
    partial_size_ = 0;
  }
  // Whole words, four at a time: one to each lane, so that the four chains of multiplications
  // overlap.
  const auto load = [](const unsigned char* q) {
    uint64_t w;
    std::memcpy(&w, q, 8);  // x86-64 and the other targets here are little-endian
    return w;
  };
  while (size >= 32) {
    for (int k = 0; k < 4; ++k) word(load(p + 8 * k));
    p += 32;
    size -= 32;
  }
  while (size >= 8) {
    word(load(p));
    p += 8;
    size -= 8;
  }
  while (size > 0) {
    partial_[partial_size_++] = *p++;
    --size;
  }
}

std::string WordChecksum::hex() const {
  uint64_t lanes[4] = {lanes_[0], lanes_[1], lanes_[2], lanes_[3]};
  if (partial_size_ > 0) lanes[count_ % 4] = mix(lanes[count_ % 4], partial_word());
  Fnv1a64 h;
  for (uint64_t lane : lanes) h.add(&lane, 8);
  h.add(&bytes_, 8);
  return "w4fnv1a64:" + h.hex();
}

std::string file_fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "cannot read ", path);
  Fnv1a64 h;
  std::vector<char> buffer(1 << 16);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    h.add(buffer.data(), static_cast<size_t>(in.gcount()));
  }
  check(in.eof(), "error reading ", path);
  return h.hex();
}

}  // namespace compacter

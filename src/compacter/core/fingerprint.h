// A 64-bit FNV-1a hash (Fowler, Noll, Vo; offset basis 14695981039346656037, prime
// 1099511628211), written as 16 lowercase hex digits: a cheap identity for files and sampled
// tensor values (not a cryptographic hash: it tells apart checkpoints, it does not resist forgery).
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

namespace compacter {

class Fnv1a64 {
 public:
  void add(const void* data, size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) {
      state_ ^= p[i];
      state_ *= 1099511628211ULL;
    }
  }
  void add(const std::string& s) {
    add(s.data(), s.size());
    const unsigned char end = 0;  // so that ("ab", "c") and ("a", "bc") differ
    add(&end, 1);
  }
  void add_int(int64_t v) { add(&v, sizeof v); }
  uint64_t value() const { return state_; }
  std::string hex() const {
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(state_));
    return out;
  }

 private:
  uint64_t state_ = 14695981039346656037ULL;
};

// A checksum fast enough for gigabytes of weights (the data section of the safetensors models we
// write; byte-wise FNV-1a runs at well under 1 GB/s): FNV-1a 64 over the bytes taken as
// little-endian 64-bit words (the last one zero-padded), word i going to lane i % 4; then
// FNV-1a 64 (byte-wise, as Fnv1a64) over the four lanes' values and the byte count, each as 8
// little-endian bytes. Written as "w4fnv1a64:" and 16 lowercase hex digits. Any split of the
// bytes over add() calls gives the same value.
class WordChecksum {
 public:
  void add(const void* data, size_t size);
  std::string hex() const;  // the total so far; add() may go on

 private:
  static uint64_t mix(uint64_t lane, uint64_t w) { return (lane ^ w) * 1099511628211ULL; }
  void word(uint64_t w) {
    lanes_[count_ % 4] = mix(lanes_[count_ % 4], w);
    ++count_;
  }
  uint64_t partial_word() const;  // the pending bytes as a little-endian word, zero-padded
  uint64_t lanes_[4] = {14695981039346656037ULL, 14695981039346656037ULL, 14695981039346656037ULL,
                        14695981039346656037ULL};
  uint64_t count_ = 0;        // whole words added
  unsigned char partial_[8];  // bytes of a word not yet complete
  size_t partial_size_ = 0;
  uint64_t bytes_ = 0;
};

// The hash of a whole file's bytes; throws Error naming the file when it cannot be read.
std::string file_fingerprint(const std::string& path);

}  // namespace compacter

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

// The hash of a whole file's bytes; throws Error naming the file when it cannot be read.
std::string file_fingerprint(const std::string& path);

}  // namespace compacter

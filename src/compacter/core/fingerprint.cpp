// File fingerprints: see fingerprint.h.
#include "compacter/core/fingerprint.h"

#include <fstream>
#include <vector>

#include "compacter/core/error.h"

namespace compacter {

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

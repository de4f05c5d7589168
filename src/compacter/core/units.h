// Human-readable sizes: decimal units (1 kB = 1000 bytes), one decimal, as every command prints
// them.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

namespace compacter {

inline std::string human_bytes(double bytes) {
  char buf[32];
  if (bytes >= 1e9)
    std::snprintf(buf, sizeof buf, "%.1f GB", bytes / 1e9);
  else if (bytes >= 1e6)
    std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.1f kB", bytes / 1e3);
  return buf;
}

}  // namespace compacter

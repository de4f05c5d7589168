// A fuzz input as a file that the reader under test opens by path: an anonymous in-memory file
// (memfd), named /proc/self/fd/N, closed by the destructor. For targets whose reader takes a
// path (task rows, the sharded checkpoint index, metrics.jsonl, bench --plot's JSON).
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

struct MemoryFile {
  int fd = -1;
  MemoryFile(const uint8_t* data, size_t size) {
    fd = memfd_create("compacter-fuzz", 0);
    if (fd < 0) __builtin_trap();
    size_t done = 0;
    while (done < size) {
      const ssize_t n = write(fd, data + done, size - done);
      if (n <= 0) __builtin_trap();
      done += static_cast<size_t>(n);
    }
  }
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;
  ~MemoryFile() { close(fd); }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd); }
};

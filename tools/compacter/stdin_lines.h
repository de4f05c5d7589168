// Lines of stdin in batches for `serve`: blocks for the first line of a batch, then takes every
// complete line already readable, up to a maximum, so that requests waiting together are answered
// together.
#pragma once
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "compacter/core/error.h"

namespace compacter::cli {

// A last line without a newline counts at end of input.
class LineBatches {
 public:
  bool next(std::vector<std::string>& out, size_t max) {
    out.clear();
    while (out.size() < max) {
      const size_t end = buffer_.find('\n', start_);
      if (end != std::string::npos) {
        std::string line = buffer_.substr(start_, end - start_);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        out.push_back(std::move(line));
        start_ = end + 1;
        continue;
      }
      if (eof_) {
        if (start_ < buffer_.size()) out.push_back(buffer_.substr(start_));
        start_ = buffer_.size();
        break;
      }
      if (!out.empty() && !readable_now()) break;
      fill();
    }
    return !out.empty();
  }

 private:
  static bool readable_now() {
    pollfd p{STDIN_FILENO, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }
  void fill() {
    buffer_.erase(0, start_);
    start_ = 0;
    char chunk[1 << 16];
    ssize_t n;
    do {
      n = ::read(STDIN_FILENO, chunk, sizeof chunk);
    } while (n < 0 && errno == EINTR);
    check(n >= 0, "reading requests from stdin: ", std::strerror(errno));
    if (n == 0) eof_ = true;
    buffer_.append(chunk, static_cast<size_t>(n > 0 ? n : 0));
  }
  std::string buffer_;
  size_t start_ = 0;
  bool eof_ = false;
};

}  // namespace compacter::cli

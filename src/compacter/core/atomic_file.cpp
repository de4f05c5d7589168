// Atomic file writes (write to a temporary sibling, then rename) and whole-file reads.
#include "compacter/core/atomic_file.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

#include "compacter/core/error.h"

namespace compacter {

void remove_stale_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const std::string prefix = target.filename().string() + ".tmp-";
  const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // its writer may still run
    std::error_code ignored;
    if (it->is_regular_file(ignored)) fs::remove(it->path(), ignored);
  }
}

void write_atomically(const std::string& path,
                      const std::function<void(const std::string&)>& write) {
  namespace fs = std::filesystem;
  remove_stale_temporaries(path);
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  try {
    write(tmp);
    std::error_code ec;
    fs::rename(tmp, path, ec);
    check(!ec, "cannot rename ", tmp, " to ", path, ": ", ec.message());
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

void write_text_atomically(const std::string& path, const std::string& content) {
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    check(static_cast<bool>(out), "cannot write ", tmp, ": ", std::strerror(errno));
    out << content;
    out.flush();  // the failing write's errno, before close() can change it
    check(static_cast<bool>(out), "cannot write ", tmp, ": ", std::strerror(errno));
    out.close();
    check(static_cast<bool>(out), "cannot write ", tmp, ": ", std::strerror(errno));
  });
}

std::string read_stream(std::istream& in, const std::string& path, uint64_t max_bytes) {
  const auto too_large = [&] {
    const std::string bound =
        max_bytes >= (1u << 20) ? cat(max_bytes >> 20, " MiB") : cat(max_bytes, " bytes");
    return Error(cat(path, ": larger than ", bound,
                     ", more than this file may have (a limit against files that would exhaust "
                     "memory)"));
  };
  // A seekable stream (a file) is measured first, so that a huge file is refused unread.
  std::string bytes;
  const std::streampos start = in.tellg();
  if (start != std::streampos(-1) && in.seekg(0, std::ios::end)) {
    const std::streampos end = in.tellg();
    in.seekg(start);
    if (end != std::streampos(-1)) {
      if (static_cast<uint64_t>(end - start) > max_bytes) throw too_large();
      bytes.reserve(static_cast<size_t>(end - start));
    }
  }
  in.clear();
  char piece[1 << 16];
  while (in) {
    in.read(piece, sizeof piece);
    const auto got = static_cast<uint64_t>(in.gcount());
    if (bytes.size() + got > max_bytes) throw too_large();
    bytes.append(piece, got);
  }
  check(!in.bad(), path, ": read failed");
  return bytes;
}

std::string read_file(const std::string& path, uint64_t max_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  check(fs::exists(path, ec), path, ": file not found");
  check(!fs::is_directory(path, ec), path, ": is a folder, expected a file");
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), path, ": cannot open for reading");
  return read_stream(in, path, max_bytes);
}

std::string read_file(const std::string& path) {
  return read_file(path, std::numeric_limits<uint64_t>::max());
}

}  // namespace compacter

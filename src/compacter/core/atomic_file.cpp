// Atomic file writes (write to a temporary sibling, then rename) and whole-file reads.
#include "compacter/core/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "compacter/core/error.h"

namespace compacter {

void write_atomically(const std::string& path,
                      const std::function<void(const std::string&)>& write) {
  namespace fs = std::filesystem;
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
    out.close();
    check(static_cast<bool>(out), "cannot write ", tmp, " (disk full?)");
  });
}

std::string read_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  check(fs::exists(path, ec), path, ": file not found");
  check(!fs::is_directory(path, ec), path, ": is a folder, expected a file");
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), path, ": cannot open for reading");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  check(!in.bad(), path, ": read failed");
  return bytes;
}

}  // namespace compacter

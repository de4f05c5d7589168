// An output folder written all at once (see staged_dir.h).
#include "compacter/interop/staged_dir.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <system_error>

#include "compacter/core/error.h"

namespace compacter::interop {

namespace fs = std::filesystem;

namespace {

std::string sibling(const std::string& out, const char* tag) {
  static std::atomic<int> counter{0};
  const fs::path p = fs::path(out).lexically_normal();
  const std::string name =
      p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
  const fs::path parent = p.filename().empty() ? p.parent_path().parent_path() : p.parent_path();
  return (parent / cat(".", name, ".", tag, "-", ::getpid(), "-", counter++)).string();
}

bool inside(const fs::path& path, const fs::path& folder) {
  const fs::path a = fs::weakly_canonical(path), b = fs::weakly_canonical(folder);
  auto ia = a.begin();
  for (auto ib = b.begin(); ib != b.end(); ++ib, ++ia)
    if (ia == a.end() || *ia != *ib) return false;
  return true;
}

}  // namespace

StagedDir::StagedDir(const std::string& out, bool overwrite, const std::string& source)
    : out_(out) {
  check_usage(!out.empty(), "--out is empty");
  check_usage(source.empty() || !inside(out, source), "the output folder ", out,
              " is (or is inside) the input folder ", source, "; give another");
  check_usage(source.empty() || !inside(source, out), "the output folder ", out,
              " holds the input folder ", source, "; give another");
  check_usage(overwrite || !fs::exists(out), out, " already exists (pass --force to replace it)");
  check_usage(!fs::exists(out) || fs::is_directory(out), out,
              " exists and is not a folder; give another --out");
  tmp_ = sibling(out, "tmp");
  const fs::path parent = fs::path(tmp_).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  fs::create_directory(tmp_);
}

StagedDir::~StagedDir() {
  if (committed_) return;
  std::error_code ignored;
  fs::remove_all(tmp_, ignored);
}

void StagedDir::commit() {
  check(!committed_, "internal: ", out_, " committed twice");
  if (fs::exists(out_)) {
    const std::string old = sibling(out_, "old");
    fs::rename(out_, old);
    fs::rename(tmp_, out_);
    committed_ = true;
    std::error_code ignored;
    fs::remove_all(old, ignored);
    return;
  }
  fs::rename(tmp_, out_);
  committed_ = true;
}

}  // namespace compacter::interop

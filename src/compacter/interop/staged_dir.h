// An output folder written all at once: files go into a hidden sibling folder
// (.NAME.tmp-<pid>-<n> beside OUT), which replaces OUT only when every file is written (commit). A
// failure or an exception before commit removes the sibling, so OUT is never left half written; an
// existing OUT is refused unless `overwrite` (the commands' --force).
#pragma once
#include <string>

namespace compacter::interop {

class StagedDir {
 public:
  // Throws UsageError when `out` exists and !overwrite, or when it is, lies inside or holds
  // `source` (replacing it would remove what is being read).
  StagedDir(const std::string& out, bool overwrite, const std::string& source = "");
  ~StagedDir();
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;

  const std::string& path() const { return tmp_; }  // the folder to write into
  std::string file(const std::string& name) const { return tmp_ + "/" + name; }
  // Moves the written folder to `out` (an existing `out` is moved aside first, then removed).
  void commit();

 private:
  std::string out_, tmp_;
  bool committed_ = false;
};

}  // namespace compacter::interop

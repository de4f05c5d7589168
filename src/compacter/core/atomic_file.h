// Whole-file I/O. Atomic writes: content goes to a temporary file in the target's folder, which
// is then renamed over the target, so readers never see a partial file. Whole reads: a file's
// bytes, or an Error naming it.
#pragma once
#include <functional>
#include <string>

namespace compacter {

// Calls write(tmp_path) to produce the file, then renames tmp_path to `path`. On any exception
// the temporary file is removed and the exception rethrown; `path` is left untouched.
void write_atomically(const std::string& path,
                      const std::function<void(const std::string&)>& write);

// Removes the temporaries of earlier writes to `path` whose process no longer runs (files
// "<name>.tmp-<pid>" left by a kill -9 between write and rename); write_atomically calls it.
// A temporary whose process runs (or may: kill(pid, 0) does not say ESRCH) is kept.
void remove_stale_temporaries(const std::string& path);

// Writes `content` to `path` atomically.
void write_text_atomically(const std::string& path, const std::string& content);

// The bytes of the file `path` (Error naming it: missing, a folder, unreadable).
std::string read_file(const std::string& path);

}  // namespace compacter

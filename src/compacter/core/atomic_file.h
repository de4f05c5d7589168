// Whole-file I/O. Atomic writes: content goes to a temporary file in the target's folder, which
// is then renamed over the target, so readers never see a partial file. Whole reads: a file's
// bytes, or an Error naming it.
#pragma once
#include <cstdint>
#include <functional>
#include <istream>
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

// Bounds on the users' files read whole, so that no file makes the program allocate without
// limit (issue #13): a JSON document (config.json, tokenizer_config.json, a sharded checkpoint's
// index, results.json, a bench document) and a run's metrics.jsonl. The largest real ones are
// far below: a 671B-parameter model's index is about 9 MB; a record of metrics.jsonl about
// 200 bytes (a million records: 200 MB).
constexpr uint64_t kMaxJsonFileBytes = uint64_t{64} << 20;
constexpr uint64_t kMaxMetricsFileBytes = uint64_t{256} << 20;

// read_file, refusing a file of more than `max_bytes` (an Error naming it and the bound).
std::string read_file(const std::string& path, uint64_t max_bytes);

// The rest of `in` (opened from `path`), refusing more than `max_bytes` as read_file does: read in
// pieces, so that the bound holds for pipes and growing files too.
std::string read_stream(std::istream& in, const std::string& path, uint64_t max_bytes);

}  // namespace compacter

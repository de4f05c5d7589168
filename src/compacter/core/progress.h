// Where the library's progress goes: the library never prints; long operations (training,
// evaluation, pretraining, benchmarks, serving) report to a sink the caller passes. The program
// writes to stderr (tools/compacter/progress_stderr.h); tests collect lines; a library user may
// drop them. All methods may be called from the thread that runs the operation only.
#pragma once
#include <string>

namespace compacter {

class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  // A line worth keeping (a setting chosen, a file written, a phase started or finished).
  virtual void info(const std::string& line) { (void)line; }
  // Something the user should know about although the operation goes on.
  virtual void warning(const std::string& line) { (void)line; }
  // A status line that the next status line supersedes (a training step, a batch done): a
  // terminal may overwrite it in place.
  virtual void status(const std::string& line) { (void)line; }
};

// A sink that drops everything.
inline ProgressSink& no_progress() {
  static ProgressSink sink;
  return sink;
}

}  // namespace compacter

// Where the library's progress goes: the library never prints; long operations (training,
// evaluation, pretraining, benchmarks, serving) report to a sink the caller passes. The program
// writes to stderr (tools/compacter/progress_stderr.h); tests collect lines; a library user may
// drop them. All methods may be called from the thread that runs the operation only.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
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

// Status lines for a long loop over items: "WHAT: done/total UNIT, N s", at most one every
// `every` seconds, and none for a loop that ends within the first period (short runs stay
// quiet).
class PeriodicStatus {
 public:
  PeriodicStatus(ProgressSink& sink, std::string what, std::string unit, double every = 2.0)
      : sink_(sink), what_(std::move(what)), unit_(std::move(unit)), every_(every) {}
  void operator()(size_t done, size_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (done >= total || std::chrono::duration<double>(now - last_).count() < every_) return;
    last_ = now;
    const auto seconds = std::chrono::duration<double>(now - start_).count();
    sink_.status(what_ + ": " + std::to_string(done) + "/" + std::to_string(total) + " " + unit_ +
                 ", " + std::to_string(static_cast<int64_t>(seconds)) + " s");
  }

 private:
  ProgressSink& sink_;
  std::string what_, unit_;
  double every_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_ = start_;
};

}  // namespace compacter

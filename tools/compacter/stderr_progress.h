// The program's progress sink: lines on stderr prefixed "compacter: ", warnings as
// "compacter: warning: ", status lines overwritten in place on a terminal (one line each
// otherwise).
#pragma once
#include <unistd.h>

#include <iostream>
#include <string>

#include "compacter/core/progress.h"

namespace compacter::cli {

class StderrProgress : public ProgressSink {
 public:
  explicit StderrProgress(std::string status_prefix = "")
      : live_(isatty(STDERR_FILENO)), status_prefix_(std::move(status_prefix)) {}
  ~StderrProgress() override { end_status(); }
  void info(const std::string& line) override {
    end_status();
    std::cerr << "compacter: " << line << "\n" << std::flush;
  }
  void warning(const std::string& line) override {
    end_status();
    std::cerr << "compacter: warning: " << line << "\n" << std::flush;
  }
  void status(const std::string& line) override {
    if (live_) {
      std::cerr << "\r\033[K" << status_prefix_ << line << std::flush;
      open_ = true;
    } else {
      std::cerr << status_prefix_ << line << "\n" << std::flush;
    }
  }

 private:
  void end_status() {
    if (open_) std::cerr << "\n";
    open_ = false;
  }
  bool live_;
  bool open_ = false;
  std::string status_prefix_;
};

}  // namespace compacter::cli

// Ctrl-C as a request to stop at the next safe point. While an InterruptScope is alive, SIGINT
// (and SIGTERM) set a flag instead of ending the process; long operations poll
// interrupt_requested() at points where they can stop cleanly (after writing a checkpoint) and
// then throw Interrupted, which main() turns into exit code 130. Scopes nest; the outermost one
// installs the handlers and restores the previous ones.
#pragma once
#include "compacter/core/error.h"

namespace compacter {

class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
};

bool interrupt_requested();

// Thrown once an operation stopped at a safe point after an interrupt.
class Interrupted : public Error {
 public:
  explicit Interrupted(const std::string& message) : Error(message) {}
};

}  // namespace compacter

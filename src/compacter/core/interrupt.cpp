// SIGINT / SIGTERM as a flag: see interrupt.h.
#include "compacter/core/interrupt.h"

#include <atomic>
#include <csignal>

namespace compacter {

namespace {

std::atomic<bool> g_requested{false};
int g_depth = 0;
void (*g_previous_int)(int) = nullptr;
void (*g_previous_term)(int) = nullptr;

extern "C" void on_signal(int) {
  g_requested = true;
}

}  // namespace

InterruptScope::InterruptScope() {
  if (g_depth++ > 0) return;
  g_requested = false;
  g_previous_int = std::signal(SIGINT, on_signal);
  g_previous_term = std::signal(SIGTERM, on_signal);
}

InterruptScope::~InterruptScope() {
  if (--g_depth > 0) return;
  std::signal(SIGINT, g_previous_int);
  std::signal(SIGTERM, g_previous_term);
}

bool interrupt_requested() {
  return g_requested.load();
}

}  // namespace compacter

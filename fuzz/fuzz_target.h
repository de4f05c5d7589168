// What each fuzz target built on replay_main.cpp provides: whether `data` is accepted by the code
// under test (true) or refused with compacter::Error (false). Any other exception, a crash, a
// sanitizer report or a violated invariant (__builtin_trap) is a bug. LLVMFuzzerTestOneInput
// calls it; the replay driver also checks it against the seeds' names (ok-* / bad-*).
#pragma once
#include <cstddef>
#include <cstdint>

#include "compacter/core/error.h"

bool compacter_fuzz_accepts(const uint8_t* data, size_t size);

// The usual body of compacter_fuzz_accepts: true when `parse` returns (its invariants checked
// with __builtin_trap), false when it refuses with compacter::Error; any other exception escapes.
template <class Parse>
bool compacter_fuzz_accepted_unless_error(Parse&& parse) {
  try {
    parse();
    return true;
  } catch (const compacter::Error&) {
    return false;
  }
}

#define COMPACTER_FUZZ_ENTRY_POINT                                          \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { \
    compacter_fuzz_accepts(data, size);                                     \
    return 0;                                                               \
  }

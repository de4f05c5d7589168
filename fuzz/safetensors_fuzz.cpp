// Fuzz target for the safetensors header parser (io/safetensors_header.h, parse_header, which
// every .safetensors file goes through): any input must either parse or throw compacter::Error;
// any other exception, crash or out-of-bounds read is a bug. What was accepted must be
// self-consistent: every tensor's byte range lies inside the input. Built on the shared driver
// (fuzz_target.h; the replay main is replay_main.cpp).
#include <cstddef>
#include <cstdint>

#include "compacter/core/error.h"
#include "compacter/io/safetensors_header.h"
#include "fuzz_target.h"

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  return compacter_fuzz_accepted_unless_error([&] {
    const auto h = compacter::safetensors::parse_header(data, size, "fuzz-input");
    for (const auto& t : h.tensors)
      if (t.begin > t.end || h.data_start + t.end > size) __builtin_trap();
  });
}

COMPACTER_FUZZ_ENTRY_POINT

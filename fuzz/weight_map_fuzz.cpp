// Fuzz target for the index of a sharded checkpoint (model.safetensors.index.json /
// pytorch_model.bin.index.json; io/weight_map.h): the input is the index file, handed over as an
// in-memory file. Beyond "accepted or compacter::Error": an accepted index lists at least one
// tensor, and every shard it names is a relative path that stays inside the checkpoint's folder
// (not empty, no root, no ".." part), so no index makes the loaders open a file elsewhere.
#include <filesystem>

#include "compacter/io/weight_map.h"
#include "fuzz_target.h"
#include "memory_file.h"

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  MemoryFile file(data, size);
  return compacter_fuzz_accepted_unless_error([&] {
    const auto shard_of = compacter::read_weight_map(file.path());
    if (shard_of.empty()) __builtin_trap();
    for (const auto& [tensor, shard] : shard_of) {
      const std::filesystem::path p(shard);
      if (shard.empty() || p.is_absolute() || p.has_root_directory()) __builtin_trap();
      for (const auto& part : p)
        if (part == "..") __builtin_trap();
    }
  });
}

COMPACTER_FUZZ_ENTRY_POINT

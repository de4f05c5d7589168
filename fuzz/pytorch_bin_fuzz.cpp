// Fuzz target for the pytorch_model.bin reader (torch-free part): a zip archive goes through
// zip::Archive, the restricted unpickler and the storage-size checks, and every storage is then
// read (CRC-checked) from memory; any other input is fed to the unpickler directly, so that
// pickles are fuzzed without a zip container's CRC in the way. Every input must either be
// accepted or throw compacter::Error; any other exception, crash, sanitizer report, allocation
// beyond the input's size or hang is a bug. What was accepted is checked to be self-consistent.
// Built on the shared driver (fuzz_target.h; the replay main is replay_main.cpp).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/io/pytorch_bin_format.h"
#include "compacter/io/state_dict_pickle.h"
#include "compacter/io/zip_archive.h"
#include "fuzz_target.h"

namespace {

using namespace compacter;

// Every view lies inside its storage: offset + sum((size - 1) * stride) < numel.
void check_views(const torch_pickle::StateDict& d) {
  for (const auto& t : d.tensors) {
    if (t.storage >= d.storages.size() || t.shape.size() != t.stride.size()) __builtin_trap();
    unsigned __int128 numel = 1, last = t.offset;
    for (size_t i = 0; i < t.shape.size(); ++i) {
      if (t.shape[i] < 0 || t.stride[i] < 0) __builtin_trap();
      numel *= static_cast<uint64_t>(t.shape[i]);
      if (t.shape[i] > 0)
        last += static_cast<unsigned __int128>(t.shape[i] - 1) * static_cast<uint64_t>(t.stride[i]);
    }
    if (numel > 0 && last >= d.storages[t.storage].numel) __builtin_trap();
  }
}

// Reads a whole archive as pytorch_bin::File does, from memory. Returns the tensor count.
size_t read_archive(const uint8_t* data, size_t size, const std::string& name) {
  pytorch_bin::check_zip_checkpoint(data, size < 512 ? size : 512, name);
  auto source = std::make_shared<zip::MemorySource>(data, size, name);
  const zip::Archive archive = zip::Archive::open(source);
  for (const zip::Entry& e : archive.entries())
    if (e.data_offset > size || e.size > size - e.data_offset) __builtin_trap();
  const pytorch_bin::Index index = pytorch_bin::read_index(archive);
  check_views(index.dict);
  for (size_t i = 0; i < index.storage_entries.size(); ++i) {
    const zip::Entry& e = index.storage_entries[i];
    if (e.size > size) __builtin_trap();  // allocation bounded by the input
    std::vector<uint8_t> bytes(static_cast<size_t>(e.size));
    pytorch_bin::read_storage(archive, index, i, bytes.data());
  }
  return index.dict.tensors.size();
}

size_t read_pickle(const uint8_t* data, size_t size, const std::string& name) {
  const torch_pickle::StateDict d = torch_pickle::parse_state_dict(data, size, name);
  check_views(d);
  return d.tensors.size();
}

// Accepts or throws Error; true when accepted.
bool run_one(const uint8_t* data, size_t size, const std::string& name) {
  if (zip::looks_like_zip(data, size)) {
    read_archive(data, size, name);
  } else {
    read_pickle(data, size, name);
  }
  return true;
}

}  // namespace

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  bool accepted = false;
  try {
    accepted = run_one(data, size, "fuzz-input");
  } catch (const compacter::Error&) {
  }
  if (!compacter::zip::looks_like_zip(data, size)) {
    try {  // the legacy-format and not-a-zip refusals
      compacter::pytorch_bin::check_zip_checkpoint(data, size < 512 ? size : 512, "fuzz-input");
    } catch (const compacter::Error&) {
    }
  }
  return accepted;
}

COMPACTER_FUZZ_ENTRY_POINT

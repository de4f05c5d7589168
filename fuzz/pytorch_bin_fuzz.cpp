// Fuzz target for the pytorch_model.bin reader (torch-free part): a zip archive goes through
// zip::Archive, the restricted unpickler and the storage-size checks, and every storage is then
// read (CRC-checked) from memory; any other input is fed to the unpickler directly, so that
// pickles are fuzzed without a zip container's CRC in the way. Every input must either be
// accepted or throw compacter::Error; any other exception, crash, sanitizer report, allocation
// beyond the input's size or hang is a bug. What was accepted is checked to be self-consistent.
// With COMPACTER_FUZZ_REPLAY this file also has a main() (fuzz_pytorch_bin_replay): it runs the
// target over files or folders given on the command line and checks the seeds' names: "ok-*"
// files must be accepted, "bad-*" files rejected.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/io/pytorch_bin_format.h"
#include "compacter/io/state_dict_pickle.h"
#include "compacter/io/zip_archive.h"

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

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    run_one(data, size, "fuzz-input");
  } catch (const compacter::Error&) {
  }
  if (!compacter::zip::looks_like_zip(data, size)) {
    try {  // the legacy-format and not-a-zip refusals
      compacter::pytorch_bin::check_zip_checkpoint(data, size < 512 ? size : 512, "fuzz-input");
    } catch (const compacter::Error&) {
    }
  }
  return 0;
}

#ifdef COMPACTER_FUZZ_REPLAY
#include <algorithm>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

int main(int argc, char** argv) {
  std::vector<std::pair<std::string, std::string>> inputs;
  for (int i = 1; i < argc; ++i) {
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(argv[i])) {
      for (const auto& e : std::filesystem::directory_iterator(argv[i]))
        if (e.is_regular_file()) files.push_back(e.path());
    } else {
      files.emplace_back(argv[i]);
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      if (!in) {
        std::cerr << "cannot read " << f << "\n";
        return 2;
      }
      std::ostringstream s;
      s << in.rdbuf();
      inputs.emplace_back(f.string(), s.str());
    }
  }
  if (inputs.empty()) {
    std::cerr << "usage: fuzz_pytorch_bin_replay FILE_OR_FOLDER...\n";
    return 2;
  }
  int failures = 0;
  for (const auto& [name, bytes] : inputs) {
    const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
    const std::string base = std::filesystem::path(name).filename().string();
    try {
      LLVMFuzzerTestOneInput(data, bytes.size());  // what the fuzzer runs; must not crash
      bool accepted = false;
      std::string why;
      try {
        accepted = run_one(data, bytes.size(), name);
      } catch (const compacter::Error& e) {
        why = e.what();
      }
      if (base.rfind("ok-", 0) == 0 && !accepted) {
        std::cerr << "FAIL " << name << ": expected to be accepted, got: " << why << "\n";
        ++failures;
      } else if (base.rfind("bad-", 0) == 0 && accepted) {
        std::cerr << "FAIL " << name << ": expected an error, but it was accepted\n";
        ++failures;
      } else {
        std::cout << (accepted ? "accepted " + name : "rejected " + why) << "\n";
      }
    } catch (const std::exception& e) {
      std::cerr << "FAIL " << name << ": unexpected exception (a bug): " << e.what() << "\n";
      ++failures;
    }
  }
  std::cout << inputs.size() << " inputs, " << failures << " failures\n";
  return failures == 0 ? 0 : 1;
}
#endif

// Fuzz target for the safetensors header parser: any input must either parse or throw
// compacter::Error; any other exception, crash or out-of-bounds read is a bug.
// With COMPACTER_FUZZ_REPLAY this file also has a main() (fuzz_safetensors_replay) that runs the
// target over files or folders given on the command line, or over a built-in seed corpus, and
// checks the seeds' names: "ok-*" files must parse, "bad-*" files must be rejected.
#include <cstddef>
#include <cstdint>
#include <string>

#include "compacter/core/error.h"
#include "compacter/io/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto h = compacter::safetensors::parse_header(data, size, "fuzz-input");
    // Everything parse_header accepted must be self-consistent.
    for (const auto& t : h.tensors) {
      if (t.begin > t.end || h.data_start + t.end > size) __builtin_trap();
    }
  } catch (const compacter::Error&) {
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
#include <vector>

namespace {

// A few inputs so the driver checks something even without a corpus folder.
std::string built_in(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(json.size() >> (8 * i));
  return out + json + data;
}

// Returns 0 when the input behaves as its name promises ("ok-" parses, "bad-" throws Error).
int replay(const std::string& name, const std::string& bytes) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  LLVMFuzzerTestOneInput(data, bytes.size());  // what the fuzzer runs; must not crash
  bool parsed = false;
  std::string why;
  try {
    compacter::safetensors::parse_header(data, bytes.size(), name);
    parsed = true;
  } catch (const compacter::Error& e) {
    why = e.what();
  }
  const std::string base = std::filesystem::path(name).filename().string();
  if (base.rfind("ok-", 0) == 0 && !parsed) {
    std::cerr << "FAIL " << name << ": expected to parse, got: " << why << "\n";
    return 1;
  }
  if (base.rfind("bad-", 0) == 0 && parsed) {
    std::cerr << "FAIL " << name << ": expected an error, but it parsed\n";
    return 1;
  }
  if (parsed) {
    std::cout << "parsed   " << name << "\n";
  } else {
    std::cout << "rejected " << why << "\n";
  }
  return 0;
}

}  // namespace

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
  if (argc == 1) {
    inputs = {
        {"ok-builtin-empty", built_in("{}", "")},
        {"ok-builtin-one", built_in(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                    std::string(8, 'x'))},
        {"bad-builtin-short", std::string(5, '\0')},
        {"bad-builtin-range", built_in(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                       std::string(4, 'x'))},
    };
  }
  int failures = 0;
  for (const auto& [name, bytes] : inputs) {
    try {
      failures += replay(name, bytes);
    } catch (const std::exception& e) {
      std::cerr << "FAIL " << name << ": unexpected exception (a bug): " << e.what() << "\n";
      ++failures;
    }
  }
  std::cout << inputs.size() << " inputs, " << failures << " failures\n";
  return failures == 0 ? 0 : 1;
}
#endif

// The replay driver of the fuzz targets built on fuzz_target.h (fuzz_<target>_replay, unit tests
// in CTest): runs the target over the files of the folders or files given, and checks each seed
// against its name: "ok-*" must be accepted, "bad-*" refused with compacter::Error, anything else
// only must not crash. Exit 1 on a failed expectation or an exception other than
// compacter::Error (a bug); a fuzzer's finding (crash-*, timeout-*) is replayed the same way.
#include <algorithm>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "fuzz_target.h"

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    if (std::filesystem::is_directory(argv[i])) {
      for (const auto& e : std::filesystem::directory_iterator(argv[i]))
        if (e.is_regular_file()) files.push_back(e.path());
    } else {
      files.emplace_back(argv[i]);
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::cerr << "usage: " << argv[0] << " FOLDER_OR_FILE...  (no input found)\n";
    return 2;
  }
  int failures = 0;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::cerr << "cannot read " << f << "\n";
      return 2;
    }
    std::ostringstream s;
    s << in.rdbuf();
    const std::string bytes = s.str();
    const std::string name = f.filename().string();
    try {
      const bool accepted =
          compacter_fuzz_accepts(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      const bool want_ok = name.rfind("ok-", 0) == 0, want_bad = name.rfind("bad-", 0) == 0;
      if ((want_ok && !accepted) || (want_bad && accepted)) {
        std::cerr << "FAIL " << f.string() << ": " << (accepted ? "accepted" : "refused") << "\n";
        ++failures;
      } else {
        std::cout << (accepted ? "accepted " : "refused  ") << f.string() << "\n";
      }
    } catch (const std::exception& e) {
      std::cerr << "FAIL " << f.string() << ": unexpected exception (a bug): " << e.what() << "\n";
      ++failures;
    }
  }
  std::cout << files.size() << " inputs, " << failures << " failures\n";
  return failures == 0 ? 0 : 1;
}

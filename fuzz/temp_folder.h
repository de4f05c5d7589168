// A temporary folder for fuzz targets whose reader takes a folder (report's run folder, a model
// folder, a WordNet folder): made once per process (mkdtemp), removed at exit. put() writes one
// input file into it, or removes it; an I/O failure traps (it is the harness's, not a finding).
#pragma once
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

struct TempFolder {
  std::string path;
  TempFolder() {
    std::string pattern = std::filesystem::temp_directory_path() / "compacter-fuzz-XXXXXX";
    if (!mkdtemp(pattern.data())) __builtin_trap();
    path = pattern;
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
  ~TempFolder() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  // Writes `name` with `bytes`, or removes it when `present` is false.
  void put(const std::string& name, const std::string& bytes, bool present = true) const {
    std::error_code ec;
    std::filesystem::remove(path + "/" + name, ec);
    if (!present) return;
    std::ofstream out(path + "/" + name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) __builtin_trap();
  }
};

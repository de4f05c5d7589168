// Reading a JSON document from a user's file: see json_file.h.
#include "compacter/core/json_file.h"

#include <fstream>

#include "compacter/core/error.h"

namespace compacter {

nlohmann::json read_json_document(const std::string& path, uint64_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), "cannot open ", path);
  const std::string text = read_stream(in, path, max_bytes);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(path, ": not valid JSON: ", e.what()));
  }
}

}  // namespace compacter

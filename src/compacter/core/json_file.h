// Reading a JSON document from a user's file: opened, read whole within a bound
// (kMaxJsonFileBytes, atomic_file.h) and parsed, with one Error naming the file for each way it
// can fail. One reader for config.json, generation_config.json, tokenizer_config.json,
// results.json, a bench document and `train --config`.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "compacter/core/atomic_file.h"

namespace compacter {

// The JSON document in the file `path`. Throws Error: "cannot open PATH" when it cannot be
// opened, "PATH: larger than N MiB, ..." beyond `max_bytes`, "PATH: not valid JSON: WHY".
nlohmann::json read_json_document(const std::string& path, uint64_t max_bytes = kMaxJsonFileBytes);

}  // namespace compacter

// The checks of an adapter directory's adapter_config.json that need no model (peft/adapter_file.h
// reads the file and calls them; the fuzz target fuzz/adapter_config_fuzz.cpp calls them on
// arbitrary JSON): its format and version, the method, seed and options, and the option strings
// that name blocks ("0-4", "0,1,2": AdapterDrop) and modules ("q, v").
// Header-only: these take JSON and text and return values, nothing else.
#pragma once
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/core/options.h"
#include "compacter/peft/adapter_file.h"

namespace compacter::peft {

// The highest block a block list may name: far above any T5 (io/t5_config.h allows 1,024 blocks),
// and low enough that "0-99999999999" cannot ask for billions of entries.
constexpr int64_t kMaxBlockIndex = 65535;

// "format": "compacter-adapter" and an integer "format_version" from 1 up to this compacter's.
inline void check_adapter_config_format(const nlohmann::json& j, const std::string& path) {
  // (j.value would throw nlohmann's type_error for a "format" that is not a string.)
  check(j.is_object() && j.contains("format") && j["format"].is_string() &&
            j["format"].get<std::string>() == "compacter-adapter",
        path, ": \"format\" must be \"compacter-adapter\"");
  check(j.contains("format_version") && j["format_version"].is_number_integer(), path,
        ": missing integer \"format_version\"");
  const nlohmann::json& v = j["format_version"];
  // As int64_t, not int: 4294967297 must not read as version 1.
  check(!v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX), path,
        ": format_version ", v.dump(), " is newer than this compacter understands (",
        kAdapterFormatVersion, "); upgrade compacter");
  const int64_t version = v.get<int64_t>();
  check(version <= kAdapterFormatVersion, path, ": format_version ", version,
        " is newer than this compacter understands (", kAdapterFormatVersion,
        "); upgrade compacter");
  check(version >= 1, path, ": bad format_version ", version);
}

// The method, seed and options of a config that passed check_adapter_config_format.
// `method_defaults` gives a method's default options and throws Error for an unknown method
// (peft::method_defaults).
inline AdapterSpec adapter_spec_from_config(
    const nlohmann::json& j, const std::string& path,
    const std::function<PeftOptions(const std::string&)>& method_defaults) {
  for (const char* key : {"method", "seed", "options", "base_model"})
    check(j.contains(key), path, ": missing \"", key, "\"");
  check(j["method"].is_string(), path, ": \"method\" must be a string");
  check(j["seed"].is_number_unsigned(), path, ": \"seed\" must be a non-negative integer");
  AdapterSpec spec;
  spec.method = j["method"].get<std::string>();
  spec.seed = j["seed"].get<uint64_t>();
  spec.options = method_defaults(spec.method);  // throws for an unknown method
  options::from_json(j["options"], path, "method option", spec.options);
  return spec;
}

// Blocks listed as "0-4" / "0,1,2" / "" (spaces ignored), each from 0 to kMaxBlockIndex.
inline std::vector<int64_t> block_list_from_text(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  std::string item;
  auto number = [&](const std::string& s) -> int64_t {
    check(!s.empty() && s.find_first_not_of("0123456789") == std::string::npos, "bad block list \"",
          text, "\": expected entries like 3 or 0-4 separated by commas");
    // At most 5 digits before the value is taken: std::stoll would throw out_of_range (not an
    // Error) for 20 digits, and a range to 10^11 would fill memory.
    const size_t first = std::min(s.find_first_not_of('0'), s.size());
    check(s.size() - first <= 5 && std::stoll(s) <= kMaxBlockIndex, "bad block list \"", text,
          "\": block ", s, " is above ", kMaxBlockIndex);
    return std::stoll(s);
  };
  while (std::getline(in, item, ',')) {
    item.erase(std::remove(item.begin(), item.end(), ' '), item.end());
    if (item.empty()) continue;
    const auto dash = item.find('-');
    if (dash == std::string::npos) {
      out.push_back(number(item));
    } else {
      const int64_t lo = number(item.substr(0, dash)), hi = number(item.substr(dash + 1));
      check(lo <= hi, "bad block range \"", item, "\" in \"", text, "\"");
      check(static_cast<int64_t>(out.size()) + (hi - lo) <= kMaxBlockIndex + 1, "bad block list \"",
            text, "\": more than ", kMaxBlockIndex + 1, " blocks");
      for (int64_t b = lo; b <= hi; ++b) out.push_back(b);
    }
  }
  return out;
}

// Names listed as "q, v" / "q,v" (spaces ignored, empty entries skipped).
inline std::vector<std::string> name_list_from_text(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    item.erase(std::remove(item.begin(), item.end(), ' '), item.end());
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace compacter::peft

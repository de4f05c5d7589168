// read_weight_map (weight_map.h): the sharded checkpoint index of Hugging Face transformers.
#include "compacter/io/weight_map.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/io/json_keys.h"

namespace compacter {

namespace {

namespace fs = std::filesystem;

// A shard file name from an index must stay inside the checkpoint directory.
bool escapes(const std::string& name) {
  const fs::path p(name);
  if (name.empty() || p.is_absolute() || p.has_root_name() || p.has_root_directory()) return true;
  for (const fs::path& part : p)
    if (part == "..") return true;
  return false;
}

// SAX handler finding the first tensor named twice in an index's "weight_map" (which parsing
// into an object would silently collapse). Linear, unlike nlohmann's callback parser.
struct WeightMapDuplicates : JsonKeys {
  bool in_weight_map = false;
  std::set<std::string> seen;
  std::optional<std::string> duplicate;

  bool key(Json::string_t& k) {
    if (depth == 1) in_weight_map = k == "weight_map";
    if (depth == 2 && in_weight_map && !seen.insert(k).second && !duplicate) duplicate = k;
    return true;
  }
};

}  // namespace

std::map<std::string, std::string> read_weight_map(const std::string& ipath) {
  const std::string text = read_file(ipath, kMaxJsonFileBytes);
  WeightMapDuplicates dups;
  nlohmann::json j;
  try {
    nlohmann::json::sax_parse(text, &dups);
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(ipath, ": not valid JSON: ", e.what()));
  }
  check(!dups.duplicate, ipath, ": tensor \"", dups.duplicate.value_or(""),
        "\" is listed more than once in \"weight_map\"");
  check(j.is_object(), ipath, ": expected a JSON object with \"weight_map\"");
  auto wm = j.find("weight_map");
  check(wm != j.end(), ipath, ": missing field \"weight_map\"");
  check(wm->is_object(), ipath, ": field \"weight_map\": expected an object {tensor: shard}");
  std::map<std::string, std::string> shard_of;
  for (const auto& item : wm->items()) {
    check(item.value().is_string(), ipath, ": weight_map entry \"", item.key(),
          "\": expected a shard file name (string)");
    const std::string shard = item.value().get<std::string>();
    check(!escapes(shard), ipath, ": weight_map entry \"", item.key(), "\": shard path \"", shard,
          "\" escapes the checkpoint directory");
    shard_of[item.key()] = shard;
  }
  check(!shard_of.empty(), ipath, ": field \"weight_map\" lists no tensors");
  return shard_of;
}

}  // namespace compacter

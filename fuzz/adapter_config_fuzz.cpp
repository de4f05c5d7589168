// Fuzz target for an adapter directory's adapter_config.json (peft/adapter_config.h): any input
// that is JSON goes through the checks load_adapter runs before it touches a model: the format and
// version (check_adapter_config_format), the method, seed and options (adapter_spec_from_config,
// strict options::from_json over every PeftOptions field), then the option strings that become
// lists: adapterdrop_layers (block_list_from_text) and target_modules (name_list_from_text).
// The method registry needs libtorch's modules, so this target stands in for it with the
// methods' names (an unknown one is refused, as find_method does) and the generic defaults.
// Beyond "accepted or compacter::Error": every block of an accepted list lies in 0..kMaxBlockIndex
// (so the list is bounded), and every module name is non-empty without spaces or commas.
#include <nlohmann/json.hpp>

#include <set>
#include <string>

#include "compacter/core/error.h"
#include "compacter/peft/adapter_config.h"
#include "fuzz_target.h"

namespace {

using namespace compacter;

peft::PeftOptions defaults_of(const std::string& method) {
  static const std::set<std::string> names = {
      "full",        "adapter", "pfeiffer", "adapterdrop", "lowrank", "phm",  "compacter",
      "compacter++", "bitfit",  "prompt-r", "prompt-t",    "said",    "lora", "ia3"};
  check(names.count(method) > 0, "unknown method \"", method, "\"");
  return peft::PeftOptions{};
}

}  // namespace

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data, data + size);
  } catch (const nlohmann::json::exception&) {  // read_adapter_config: "not valid JSON"
    return false;
  }
  try {
    const std::string path = "adapter/adapter_config.json";
    peft::check_adapter_config_format(j, path);
    const peft::AdapterSpec spec = peft::adapter_spec_from_config(j, path, defaults_of);
    const std::vector<int64_t> blocks = peft::block_list_from_text(spec.options.adapterdrop_layers);
    if (static_cast<int64_t>(blocks.size()) > peft::kMaxBlockIndex + 1) __builtin_trap();
    for (int64_t b : blocks)
      if (b < 0 || b > peft::kMaxBlockIndex) __builtin_trap();
    for (const std::string& name : peft::name_list_from_text(spec.options.target_modules))
      if (name.empty() || name.find_first_of(", ") != std::string::npos) __builtin_trap();
    return true;
  } catch (const Error&) {
    return false;
  }
}

COMPACTER_FUZZ_ENTRY_POINT

// Strict reading of an options struct (one declared field by field through an X-macro) from a
// JSON object: a key that names no field, or a value of the wrong type, is an Error naming the
// source, the kind of option and the key; keys that are absent leave their fields as they are.
// Used for method options (adapter_config.json) and training options (--config files).
#pragma once
#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <utility>

#include "compacter/core/error.h"

namespace compacter {

class StrictJsonFields {
 public:
  // `what` names the options in errors ("method option", "training option").
  StrictJsonFields(const nlohmann::json& j, std::string source, std::string what,
                   std::set<std::string> known)
      : j_(j), source_(std::move(source)), what_(std::move(what)) {
    check(j.is_object(), source_, ": ", what_, "s must be a JSON object");
    for (const auto& item : j.items()) {
      if (known.count(item.key())) continue;
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw Error(cat(source_, ": unknown ", what_, " \"", item.key(), "\" (known: ", list, ")"));
    }
  }

  template <typename T>
  void read(const char* key, T& out) const {
    if (!j_.contains(key)) return;
    try {
      out = j_.at(key).template get<T>();
    } catch (const nlohmann::json::exception&) {
      throw Error(
          cat(source_, ": ", what_, " \"", key, "\" has the wrong type (", j_.at(key).dump(), ")"));
    }
  }

 private:
  const nlohmann::json& j_;
  std::string source_, what_;
};

}  // namespace compacter

// Options structs whose fields are declared once (gemma.cpp's visitor idea over an X-macro list):
//
//   #define MY_OPTIONS(X) X(type, name, default, help) ...
//   struct MyOptions { COMPACTER_OPTIONS_BODY(MY_OPTIONS) };
//
// gives the fields with their defaults and for_each(visitor), which calls visitor(name, field,
// help) for every field in declaration order. Everything generic goes through for_each: JSON
// writing and strict reading here, command-line flags and --help with defaults in the program
// (tools/compacter/option_flags.h), the effective configs that runs record.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "compacter/core/error.h"

#define COMPACTER_OPTION_FIELD_(type, name, def, help) type name = def;
#define COMPACTER_OPTION_VISIT_(type, name, def, help) v(#name, name, help);
#define COMPACTER_OPTIONS_BODY(LIST) \
  LIST(COMPACTER_OPTION_FIELD_)      \
  template <class V>                 \
  void for_each(V&& v) {             \
    LIST(COMPACTER_OPTION_VISIT_)    \
  }                                  \
  template <class V>                 \
  void for_each(V&& v) const {       \
    LIST(COMPACTER_OPTION_VISIT_)    \
  }

namespace compacter::options {

// The field names of T, in declaration order.
template <class T>
std::vector<std::string> names() {
  std::vector<std::string> out;
  T{}.for_each([&](const char* name, const auto&, const char*) { out.emplace_back(name); });
  return out;
}

// {"name": value, ...} for every field.
template <class T>
nlohmann::json to_json(const T& o) {
  nlohmann::json j = nlohmann::json::object();
  o.for_each([&](const char* name, const auto& value, const char*) { j[name] = value; });
  return j;
}

// Strict reading: `j` must be an object; a key that names no field, or a value of the wrong type,
// is an Error naming `source`, the kind of option (`what`: "method option", "training option")
// and the key; keys that are absent leave their fields as they are.
template <class T>
void from_json(const nlohmann::json& j, const std::string& source, const std::string& what, T& o) {
  check(j.is_object(), source, ": ", what, "s must be a JSON object");
  const std::vector<std::string> known = names<T>();
  for (const auto& item : j.items()) {
    bool found = false;
    for (const auto& k : known) found = found || k == item.key();
    if (found) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw Error(cat(source, ": unknown ", what, " \"", item.key(), "\" (known: ", list, ")"));
  }
  o.for_each([&](const char* name, auto& value, const char*) {
    if (!j.contains(name)) return;
    using Value = std::decay_t<decltype(value)>;
    const nlohmann::json& v = j.at(name);
    // nlohmann converts between number kinds silently; an option keeps its own kind.
    bool ok = true;
    if constexpr (std::is_same_v<Value, bool>)
      ok = v.is_boolean();
    else if constexpr (std::is_integral_v<Value> && std::is_unsigned_v<Value>)
      ok = v.is_number_unsigned();
    else if constexpr (std::is_integral_v<Value>)
      ok = v.is_number_integer();
    else if constexpr (std::is_floating_point_v<Value>)
      ok = v.is_number();
    else if constexpr (std::is_same_v<Value, std::string>)
      ok = v.is_string();
    check(ok, source, ": ", what, " \"", name, "\" has the wrong type (", v.dump(), ")");
    try {
      value = v.template get<Value>();
    } catch (const nlohmann::json::exception&) {
      throw Error(cat(source, ": ", what, " \"", name, "\" has the wrong type (", v.dump(), ")"));
    }
  });
}

}  // namespace compacter::options

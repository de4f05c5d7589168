// Reading an optional field of a JSON object that came from a file: nlohmann's
// `j.value(key, fallback)` throws its own type_error when the field holds another type (or `j` is
// not an object), and that escapes past our errors without the file's name. field_or checks the
// type first and throws compacter::Error naming the place, the key and the type expected.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "compacter/core/error.h"

namespace compacter {

namespace json_field_detail {

template <class T>
bool holds(const nlohmann::json& v) {
  if constexpr (std::is_same_v<T, bool>)
    return v.is_boolean();
  else if constexpr (std::is_integral_v<T>)  // within T's range, not cut to it
    return v.is_number_integer() &&
           (v.is_number_unsigned()
                ? v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                : v.get<int64_t>() >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                      (std::is_unsigned_v<T> ||
                       v.get<int64_t>() <= static_cast<int64_t>(std::numeric_limits<T>::max())));
  else if constexpr (std::is_floating_point_v<T>)
    return v.is_number();
  else if constexpr (std::is_same_v<T, std::string>)
    return v.is_string();
  else
    static_assert(std::is_same_v<T, bool>, "field_or reads booleans, numbers and strings");
}

template <class T>
std::string kind() {
  if constexpr (std::is_same_v<T, bool>)
    return "true or false";
  else if constexpr (std::is_integral_v<T>)
    return cat("an integer from ", +std::numeric_limits<T>::min(), " to ",
               +std::numeric_limits<T>::max());
  else if constexpr (std::is_floating_point_v<T>)
    return "a number";
  else
    return "a string";
}

}  // namespace json_field_detail

// `object[key]` as T, or `fallback` when `object` has no `key` or it is null. An Error naming
// `where` (the file, and the record or section in it) when `object` is not a JSON object or the
// field holds anything but T (booleans, integers, any number for a floating T, strings).
template <class T>
T field_or(const nlohmann::json& object, const std::string& key, const T& fallback,
           const std::string& where) {
  check(object.is_object(), where, ": expected a JSON object, got a JSON ", object.type_name());
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  check(json_field_detail::holds<T>(*it), where, ": \"", key, "\" must be ",
        json_field_detail::kind<T>(), ", got a JSON ", it->type_name());
  return it->get<T>();
}

// `object[key]` as T, which must be there: field_or's checks, and an Error naming `where` and
// the key when it is missing or null.
template <class T>
T required_field(const nlohmann::json& object, const std::string& key, const std::string& where) {
  check(object.is_object(), where, ": expected a JSON object, got a JSON ", object.type_name());
  const auto it = object.find(key);
  check(it != object.end() && !it->is_null(), where, ": missing field \"", key, "\" (",
        json_field_detail::kind<T>(), ")");
  return field_or<T>(object, key, T{}, where);
}

// `object[key]`, which must be a JSON object (`optional`: or missing or null, then an empty
// object); an Error naming `where` and the key otherwise.
inline const nlohmann::json& object_field(const nlohmann::json& object, const std::string& key,
                                          const std::string& where, bool optional = false) {
  static const nlohmann::json empty = nlohmann::json::object();
  check(object.is_object(), where, ": expected a JSON object, got a JSON ", object.type_name());
  const auto it = object.find(key);
  if (optional && (it == object.end() || it->is_null())) return empty;
  check(it != object.end(), where, ": missing field \"", key, "\" (a JSON object)");
  check(it->is_object(), where, ": \"", key, "\" must be a JSON object, got a JSON ",
        it->type_name());
  return *it;
}

// The same for a string field with a literal fallback: field_or(j, "type", "", where).
inline std::string field_or(const nlohmann::json& object, const std::string& key,
                            const char* fallback, const std::string& where) {
  return field_or<std::string>(object, key, std::string(fallback), where);
}

}  // namespace compacter

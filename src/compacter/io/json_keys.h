// The keys of a JSON text as the parser meets them, repeats included: nlohmann::json keeps only
// the last value of a key that appears twice in an object, so readers that must refuse repeats
// (safetensors headers, checkpoint indexes) look at the keys first through a handler derived from
// JsonKeys, which ignores values and tracks the nesting depth (1 inside the top-level object).
// The derived handler defines `bool key(Json::string_t&)`; pass it to nlohmann::json::sax_parse.
#pragma once
#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>

namespace compacter {

struct JsonKeys {
  using Json = nlohmann::json;
  int depth = 0;

  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(Json::number_integer_t) { return true; }
  bool number_unsigned(Json::number_unsigned_t) { return true; }
  bool number_float(Json::number_float_t, const Json::string_t&) { return true; }
  bool string(Json::string_t&) { return true; }
  bool binary(Json::binary_t&) { return true; }
  bool start_object(std::size_t) { return ++depth, true; }
  bool end_object() { return --depth, true; }
  bool start_array(std::size_t) { return ++depth, true; }
  bool end_array() { return --depth, true; }
  // Malformed JSON: the parser's exception, for the caller to report with the file's name.
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    throw e;
  }
};

}  // namespace compacter

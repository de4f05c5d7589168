// Command-line flags generated from an options struct declared once (core/options.h): one flag
// --field-name per field, with its help and its default shown in --help; bools take a value
// (--group-by-length true). The flags the user gave are recorded, so that layered settings
// (defaults < a --config file < flags) take only those from the command line.
#pragma once
#include <CLI/CLI.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <type_traits>

namespace compacter::cli {

// The CLI11 options created for each field, by field name.
using GivenFlags = std::map<std::string, CLI::Option*>;

inline std::string flag_name(std::string field) {
  std::replace(field.begin(), field.end(), '_', '-');
  return "--" + field;
}

// Adds a flag for every field of `values` (except `skip`) to `cmd` in `group`; `values` holds
// the defaults shown and receives what the user gives.
template <class T>
void add_option_flags(CLI::App& cmd, T& values, GivenFlags& given, const std::string& group,
                      const std::set<std::string>& skip = {}) {
  values.for_each([&](const char* name, auto& field, const char* help) {
    if (skip.count(name)) return;
    CLI::Option* opt = cmd.add_option(flag_name(name), field, help);
    opt->group(group)->capture_default_str();
    if constexpr (std::is_same_v<std::decay_t<decltype(field)>, bool>)
      opt->type_name("BOOL")->default_str(field ? "true" : "false");
    given[name] = opt;
  });
}

// Copies into `target` the fields whose flags were given. `target` may be another options type:
// its fields take the given flags of the same name and type (two option sets sharing flags).
template <class From, class To>
void apply_given_flags(const From& values, const GivenFlags& given, To& target) {
  target.for_each([&](const char* name, auto& field, const char*) {
    const auto it = given.find(name);
    if (it == given.end() || it->second->count() == 0) return;
    values.for_each([&](const char* other, const auto& value, const char*) {
      if constexpr (std::is_same_v<std::decay_t<decltype(value)>, std::decay_t<decltype(field)>>)
        if (std::string(other) == name) field = value;
    });
  });
}

// True when any of the recorded flags was given.
inline bool any_given(const GivenFlags& given) {
  for (const auto& [name, opt] : given)
    if (opt->count() > 0) return true;
  return false;
}

}  // namespace compacter::cli

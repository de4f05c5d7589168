// Errors: the library throws compacter::Error (with context); only main() chooses exit codes.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace compacter {

// Any failure the user can act on: bad files, bad options, wrong shapes.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// An option value the caller chose is invalid (a batch size of 0, an unknown method name, two
// options that exclude each other): main() exits with 2, the code of bad command-line usage.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(message) {}
};

// Builds a message from streamable parts: throw Error(cat("file ", path, ": bad header")).
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

// Throws Error(cat(parts...)) unless cond holds.
template <typename... Parts>
void check(bool cond, const Parts&... parts) {
  if (!cond) throw Error(cat(parts...));
}

// Throws UsageError(cat(parts...)) unless cond holds.
template <typename... Parts>
void check_usage(bool cond, const Parts&... parts) {
  if (!cond) throw UsageError(cat(parts...));
}

}  // namespace compacter

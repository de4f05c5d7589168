// `compacter serve --http` in a program built with -DCOMPACTER_HTTP=OFF (no cpp-httplib, e.g.
// scripts/gpu-check.sh on a machine without a package manager): the option is refused as bad
// usage, naming the build setting, before a model is loaded.
#include "../http_serve.h"

#include "compacter/core/error.h"

namespace compacter::cli {

namespace {
[[noreturn]] void refuse() {
  throw UsageError(
      "--http: this compacter was built without its HTTP server (CMake -DCOMPACTER_HTTP=OFF); "
      "rebuild with cpp-httplib installed (scripts/install-deps.sh), or serve JSON Lines on stdin");
}
}  // namespace

void parse_listen_address(const std::string&, HttpOptions&) {
  refuse();
}

void serve_http(serve::AdapterServer&, const HttpOptions&, ProgressSink&) {
  refuse();
}

}  // namespace compacter::cli

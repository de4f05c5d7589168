// `compacter serve --http [HOST:]PORT`: the adapter server (serve::AdapterServer) behind HTTP,
// with cpp-httplib (Debian's libcpp-httplib-dev). HTTP handler threads parse a request, enqueue
// it on the one serve::Scheduler (a worker thread that owns the model and answers everything
// waiting at each batch boundary) and wait for its replies. Endpoints and statuses: see
// http_serve.cpp's top comment and the README's "HTTP server".
#pragma once
#include <string>

#include "compacter/core/progress.h"
#include "compacter/serve/adapter_server.h"

namespace compacter::cli {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 0;         // 0: the system picks a free one (printed once listening)
  std::string api_key;  // non-empty: every endpoint needs "Authorization: Bearer KEY"
  std::string model_dir;
  std::string default_adapter;  // the adapter of requests that name none ("": one is required)
  // Non-empty: POST /adapters and DELETE /adapters/NAME are on, with "Authorization: Bearer
  // TOKEN", for folders under adapter_root (canonical, no trailing '/').
  std::string admin_token;
  std::string adapter_root;
  bool continuous = true;  // continuous batching (serve/continuous.h); false: batch per boundary
};

// "[HOST:]PORT" (HOST may be "[::1]"): the host (default 127.0.0.1) and port (0-65535).
void parse_listen_address(const std::string& text, HttpOptions& options);

// Serves until SIGINT or SIGTERM, then stops accepting, answers what is in flight and returns.
// Prints "listening on http://HOST:PORT" to `progress` once ready.
void serve_http(serve::AdapterServer& server, const HttpOptions& options, ProgressSink& progress);

}  // namespace compacter::cli

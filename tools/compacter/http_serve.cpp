// `compacter serve --http`: HTTP on top of the library's server core (serve::AdapterServer,
// serve::Scheduler, serve/requests.h), with cpp-httplib 0.11.
//
// Endpoints (JSON unless said; errors {"error": "...", "error_type": "..."}):
//   POST /generate         {"inputs": "...", "parameters": {...}} or the task's fields instead of
//                          "inputs"; a JSON list of those gives a list of replies
//                          (serve/requests.h: the parameters and the reply's shape)
//   POST /generate_stream  one such object; server-sent events, one per token, TGI's shape. The
//                          events are written once the sequence is decoded (not step by step).
//   GET /health            {"status": "ok"}
//   GET /info              base model folder, dtype, device, version, limits, default settings
//   GET /adapters          name, method, task, own parameters and bytes, base fingerprint
//   GET /metrics           Prometheus text: requests by endpoint, status and adapter, queue
//                          depth, batch sizes, batch and request latency histograms
// Statuses: 200; 400 malformed JSON, unknown field, wrong type, bad task fields; 401 missing or
// wrong API key; 404 unknown adapter or path; 413 body above max_body_bytes; 422 a value out of
// range or a limit exceeded (named); 503 with Retry-After when the queue is full or the server
// is stopping; 500 when decoding failed.
#include "http_serve.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <mutex>
#include <set>
#include <thread>

#include "compacter/core/error.h"
#include "compacter/serve/requests.h"
#include "compacter/serve/scheduler.h"

namespace compacter::cli {

namespace {

using Clock = std::chrono::steady_clock;
using serve::ErrorKind;

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) {
  g_stop = true;
}

std::string dtype_name(torch::ScalarType t) {
  if (t == torch::kFloat32) return "float32";
  if (t == torch::kBFloat16) return "bfloat16";
  if (t == torch::kFloat16) return "float16";
  if (t == torch::kFloat64) return "float64";
  return c10::toString(t);
}

nlohmann::json or_null(const std::string& s) {
  return s.empty() ? nlohmann::json() : nlohmann::json(s);
}

// Constant-time comparison of the Authorization header with the expected one.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ (i < b.size() ? b[i] : 0);
  return diff == 0;
}

// A Prometheus histogram with fixed upper bounds.
struct Histogram {
  std::vector<double> bounds;
  std::vector<int64_t> counts;  // per bucket (not cumulative), + one for +Inf
  double sum = 0;
  int64_t count = 0;
  explicit Histogram(std::vector<double> b) : bounds(std::move(b)), counts(bounds.size() + 1) {}
  void add(double v) {
    size_t i = 0;
    while (i < bounds.size() && v > bounds[i]) ++i;
    ++counts[i];
    sum += v;
    ++count;
  }
  void write(std::string& out, const std::string& name, const std::string& help) const {
    out += cat("# HELP ", name, " ", help, "\n# TYPE ", name, " histogram\n");
    int64_t cumulative = 0;
    for (size_t i = 0; i <= bounds.size(); ++i) {
      cumulative += counts[i];
      out += cat(name, "_bucket{le=\"", i < bounds.size() ? cat(bounds[i]) : std::string("+Inf"),
                 "\"} ", cumulative, "\n");
    }
    out += cat(name, "_sum ", sum, "\n", name, "_count ", count, "\n");
  }
};

std::string label_value(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

struct Metrics {
  std::mutex mutex;
  // (endpoint, status, adapter) -> inputs answered
  std::map<std::tuple<std::string, int, std::string>, int64_t> requests;
  Histogram latency{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
  Histogram batch_inputs{{1, 2, 4, 8, 16, 32, 64, 128, 256}};
  Histogram batch_seconds{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};

  void request(const std::string& endpoint, int status, const std::string& adapter,
               double seconds) {
    std::lock_guard<std::mutex> lock(mutex);
    ++requests[{endpoint, status, adapter}];
    latency.add(seconds);
  }
  void batch(size_t inputs, double seconds) {
    std::lock_guard<std::mutex> lock(mutex);
    batch_inputs.add(static_cast<double>(inputs));
    batch_seconds.add(seconds);
  }
  std::string text(int64_t queued, int64_t adapters) {
    std::lock_guard<std::mutex> lock(mutex);
    std::string out =
        "# HELP compacter_requests_total Inputs answered, by endpoint, HTTP status and adapter.\n"
        "# TYPE compacter_requests_total counter\n";
    for (const auto& [key, n] : requests) {
      const auto& [endpoint, status, adapter] = key;
      out += cat("compacter_requests_total{endpoint=\"", endpoint, "\",status=\"", status,
                 "\",adapter=\"", label_value(adapter), "\"} ", n, "\n");
    }
    out += cat("# HELP compacter_queue_inputs Inputs waiting for the worker.\n",
               "# TYPE compacter_queue_inputs gauge\ncompacter_queue_inputs ", queued, "\n");
    out += cat("# HELP compacter_adapters Adapters served (the base model included).\n",
               "# TYPE compacter_adapters gauge\ncompacter_adapters ", adapters, "\n");
    latency.write(out, "compacter_request_duration_seconds",
                  "Time from receiving an HTTP request to its reply.");
    batch_inputs.write(out, "compacter_batch_inputs",
                       "Inputs the worker answered together at one batch boundary.");
    batch_seconds.write(out, "compacter_batch_duration_seconds",
                        "Time the worker took to answer one batch.");
    return out;
  }
};

// Text a tokenizer decoded may hold invalid UTF-8 (a byte-level piece on its own): it is sent
// with U+FFFD in its place instead of failing the reply.
void send_json(httplib::Response& res, int status, const nlohmann::json& j) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                  "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message,
                const std::string& type) {
  send_json(res, status, {{"error", message}, {"error_type", type}});
}

void send_error(httplib::Response& res, const std::string& message, ErrorKind kind) {
  send_json(res, serve::http_status(kind), serve::error_json(message, kind));
}

struct HttpServer {
  serve::AdapterServer& server;
  const HttpOptions& options;
  const serve::ServerLimits& limits;
  std::set<std::string> adapters;  // served names (fixed while serving)
  Metrics metrics;
  serve::Scheduler scheduler;

  HttpServer(serve::AdapterServer& s, const HttpOptions& o)
      : server(s),
        options(o),
        limits(s.options().limits),
        scheduler(s, s.options().limits.max_queue, [this](size_t, size_t inputs, double seconds) {
          metrics.batch(inputs, seconds);
        }) {
    for (const auto& a : s.list()) adapters.insert(a.name);
    // Adapters are fixed while serving: described once, not read while the worker decodes.
    adapters_json = adapter_list();
    info_json = info();
  }
  nlohmann::json adapters_json, info_json;

  // Parses, queues and waits; on success fills `replies` and returns true, else writes the
  // error reply. `endpoint` names it in the metrics.
  bool answer(const httplib::Request& req, httplib::Response& res, const std::string& endpoint,
              bool stream, bool& is_list, std::vector<serve::Reply>& replies) {
    const auto start = Clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
    auto fail = [&](const std::string& message, ErrorKind kind, const std::string& adapter) {
      send_error(res, message, kind);
      metrics.request(endpoint, res.status, adapter, seconds());
      return false;
    };
    std::vector<serve::Request> requests;
    try {
      requests = serve::parse_generate_body(req.body, limits, server.generation(),
                                            options.default_adapter, is_list);
    } catch (const serve::RequestError& e) {
      return fail(e.what(), e.kind(), "");
    }
    if (stream) {
      if (is_list)
        return fail("POST /generate_stream takes one input, not a list", ErrorKind::bad_request,
                    "");
      serve::Request& r = requests.front();
      if (r.labels) return fail("parameters.labels is not streamed", ErrorKind::invalid, "");
      const auto& g = r.generation ? *r.generation : server.generation();
      if (g.num_return_sequences > 1)
        return fail("parameters.num_return_sequences > 1 is not streamed", ErrorKind::invalid, "");
      r.details = true;  // the events carry the tokens
    }
    for (size_t i = 0; i < requests.size(); ++i)
      if (!adapters.count(requests[i].adapter)) {
        std::string known;
        for (const auto& name : adapters) known += (known.empty() ? "" : ", ") + name;
        return fail(cat(is_list ? cat("inputs[", i, "]: ") : std::string(), "unknown adapter \"",
                        requests[i].adapter, "\" (serving: ", known, ")"),
                    ErrorKind::not_found, "");
      }
    std::vector<std::string> names;
    for (const auto& r : requests) names.push_back(r.adapter);
    auto future = scheduler.submit(std::move(requests));
    if (!future) {
      res.set_header("Retry-After", "1");
      send_error(res, 503,
                 cat("the server is busy (max_queue = ", limits.max_queue,
                     " inputs waiting) or stopping; retry later"),
                 "overloaded");
      metrics.request(endpoint, 503, names.front(), seconds());
      return false;
    }
    try {
      replies = future->get();
    } catch (const std::exception& e) {
      return fail(cat("decoding failed: ", e.what()), ErrorKind::internal, names.front());
    }
    for (size_t i = 0; i < replies.size(); ++i)
      if (!replies[i].error.empty()) {
        const int status = serve::http_status(replies[i].error_kind);
        for (const auto& name : names) metrics.request(endpoint, status, name, seconds());
        send_error(res, cat(is_list ? cat("inputs[", i, "]: ") : std::string(), replies[i].error),
                   replies[i].error_kind);
        return false;
      }
    for (const auto& name : names) metrics.request(endpoint, 200, name, seconds());
    return true;
  }

  void generate(const httplib::Request& req, httplib::Response& res) {
    bool is_list = false;
    std::vector<serve::Reply> replies;
    if (!answer(req, res, "generate", false, is_list, replies)) return;
    if (!is_list) return send_json(res, 200, serve::generate_reply_json(replies.front()));
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : replies) out.push_back(serve::generate_reply_json(r));
    send_json(res, 200, out);
  }

  // TGI's events: {"token": {"id", "text", "logprob", "special"}, "generated_text": null,
  // "details": null}, the last one with the whole text and {"finish_reason",
  // "generated_tokens", "seed"}.
  void generate_stream(const httplib::Request& req, httplib::Response& res) {
    bool is_list = false;
    std::vector<serve::Reply> replies;
    if (!answer(req, res, "generate_stream", true, is_list, replies)) return;
    const serve::Reply& reply = replies.front();
    std::string events;
    if (!reply.sequences.empty()) {
      const serve::ReplySequence& s = reply.sequences.front();
      const nlohmann::json details = serve::sequence_details_json(s, reply, true);
      const nlohmann::json& tokens = details["tokens"];
      for (size_t t = 0; t < tokens.size(); ++t) {
        nlohmann::json e = {{"index", t + 1},
                            {"token", tokens[t]},
                            {"generated_text", nullptr},
                            {"details", nullptr}};
        if (t + 1 == tokens.size()) {
          e["generated_text"] = reply.output;
          e["details"] = {{"finish_reason", details["finish_reason"]},
                          {"generated_tokens", details["generated_tokens"]},
                          {"seed", details["seed"]}};
        }
        events +=
            "data:" + e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
      }
    }
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_content(events, "text/event-stream");
  }

  nlohmann::json info() const {
    const train::BaseModel& base = server.base();
    nlohmann::json j = {{"model_id", options.model_dir},
                        {"model_dtype", dtype_name(base.precision.weights)},
                        {"autocast_bf16", base.precision.autocast},
                        {"model_device_type", base.device.str()},
                        {"version", COMPACTER_VERSION},
                        {"router", "compacter serve --http"},
                        {"limits", options::to_json(limits)},
                        {"max_batch_size", server.options().batch_size},
                        {"max_source_length", server.options().max_source_length},
                        {"default_parameters", options::to_json(server.generation())},
                        {"default_adapter", or_null(options.default_adapter)},
                        {"adapters", adapters.size()}};
    if (!server.options().labels.empty()) j["labels"] = server.options().labels;
    return j;
  }

  nlohmann::json adapter_list() const {
    nlohmann::json out = nlohmann::json::array();
    for (const serve::AdapterInfo& a : server.list()) {
      nlohmann::json j = {{"name", a.name},
                          {"method", or_null(a.method)},
                          {"task", or_null(a.task)},
                          {"dir", or_null(a.dir)},
                          {"own_parameters", a.own_parameters},
                          {"own_bytes", a.own_bytes},
                          {"base_fingerprint", or_null(a.base_fingerprint)}};
      if (a.inputs) j["fields"] = tasks::field_names(*a.inputs);
      if (a.name == serve::kBaseName) j["own_bytes"] = server.base_bytes();
      out.push_back(std::move(j));
    }
    return out;
  }
};

}  // namespace

void parse_listen_address(const std::string& text, HttpOptions& options) {
  std::string host = options.host, port = text;
  if (!text.empty() && text.front() == '[') {  // [IPv6]:PORT
    const size_t close = text.find("]:");
    check_usage(close != std::string::npos, "--http ", text, ": expected [HOST]:PORT");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else if (const size_t colon = text.rfind(':'); colon != std::string::npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  check_usage(!host.empty(), "--http ", text, ": the host is empty");
  check_usage(!port.empty() && port.size() <= 5 &&
                  port.find_first_not_of("0123456789") == std::string::npos &&
                  std::stoi(port) <= 65535,
              "--http ", text, ": expected [HOST:]PORT with a port from 0 to 65535");
  options.host = host;
  options.port = std::stoi(port);
}

void serve_http(serve::AdapterServer& server, const HttpOptions& options, ProgressSink& progress) {
  HttpServer state(server, options);
  httplib::Server http;
  http.set_payload_max_length(static_cast<size_t>(state.limits.max_body_bytes));
  http.set_keep_alive_timeout(2);  // idle keep-alive connections delay a shutdown this long
  if (!options.api_key.empty()) {
    const std::string expected = "Bearer " + options.api_key;
    http.set_pre_routing_handler([expected](const httplib::Request& req, httplib::Response& res) {
      if (same_secret(req.get_header_value("Authorization"), expected))
        return httplib::Server::HandlerResponse::Unhandled;
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, 401, "missing or wrong API key (send \"Authorization: Bearer KEY\")",
                 "unauthorized");
      return httplib::Server::HandlerResponse::Handled;
    });
  }
  // Errors httplib answers itself (no route, a body above the limit) get our JSON.
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [&state](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        if (res.status == 413)
          send_error(res, 413,
                     cat("the request body is above the server's limit max_body_bytes = ",
                         state.limits.max_body_bytes),
                     "payload_too_large");
        else if (res.status == 404)
          send_error(res, 404,
                     cat("no endpoint ", req.method, " ", req.path,
                         " (POST /generate, POST /generate_stream, GET /health, GET /info, "
                         "GET /adapters, GET /metrics)"),
                     "not_found");
        else
          send_error(res, res.status, cat("HTTP error ", res.status), "bad_request");
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string message = "internal error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          message = e.what();
        } catch (...) {
        }
        send_error(res, 500, message, "generation");
      });
  http.Post("/generate", [&state](const httplib::Request& req, httplib::Response& res) {
    state.generate(req, res);
  });
  http.Post("/generate_stream", [&state](const httplib::Request& req, httplib::Response& res) {
    state.generate_stream(req, res);
  });
  http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, {{"status", "ok"}});
  });
  http.Get("/info", [&state](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, state.info_json);
  });
  http.Get("/adapters", [&state](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, state.adapters_json);
  });
  http.Get("/metrics", [&state](const httplib::Request&, httplib::Response& res) {
    res.set_content(state.metrics.text(state.scheduler.queued_inputs(),
                                       static_cast<int64_t>(state.adapters.size())),
                    "text/plain; version=0.0.4");
  });

  int port = options.port;
  if (port == 0) {
    port = http.bind_to_any_port(options.host);
    check(port > 0, "--http ", options.host, ":0: cannot listen on a free port of ", options.host);
  } else {
    check(http.bind_to_port(options.host, port), "--http ", options.host, ":", port,
          ": cannot listen there (in use, or not an address of this machine)");
  }
  g_stop = false;
  const auto previous_int = std::signal(SIGINT, on_stop_signal);
  const auto previous_term = std::signal(SIGTERM, on_stop_signal);
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    // (httplib's stop() does nothing before the server runs: wait for both.)
    while (!done && !(g_stop && http.is_running()))
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!done) http.stop();  // stops accepting; listen_after_bind returns once handlers answered
  });
  const std::string shown_host =
      options.host.find(':') != std::string::npos ? "[" + options.host + "]" : options.host;
  progress.info(cat("listening on http://", shown_host, ":", port,
                    options.api_key.empty() ? "" : " (API key required)"));
  const bool ok = http.listen_after_bind();
  done = true;
  watcher.join();
  state.scheduler.stop();  // answers anything still queued
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
  check(ok || g_stop, "the HTTP server stopped unexpectedly");
  progress.info(g_stop ? "stopped (signal): every request in flight was answered" : "stopped");
}

}  // namespace compacter::cli

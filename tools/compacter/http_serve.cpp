// `compacter serve --http`: HTTP on top of the library's server core (serve::AdapterServer,
// serve::Scheduler, serve/requests.h), with cpp-httplib 0.11.
//
// Endpoints (JSON unless said; errors {"error": "...", "error_type": "..."}):
//   POST /generate         {"inputs": "...", "parameters": {...}} or the task's fields instead of
//                          "inputs"; a JSON list of those gives a list of replies
//                          (serve/requests.h: the parameters and the reply's shape)
//   POST /generate_stream  one such object; server-sent events, one per token as it is decoded
//                          (greedy and sampled requests: the continuous batch), TGI's shape;
//                          beam search and labels send theirs once decoded
//   POST /adapters         {"name", "path"}: loads an adapter at run time (admin token; the path
//                          under --adapter-root); DELETE /adapters/NAME unloads one
//   GET /health            {"status": "ok"}
//   GET /info              base model folder, dtype, device, version, limits, default settings
//   GET /adapters          name, method, task, own parameters and bytes, base fingerprint
//   GET /metrics           Prometheus text: requests by endpoint, status and adapter, queue
//                          depth, running rows, batch sizes, batch and request latency, time to
//                          first token and per token histograms, adapters and their bytes
// Statuses: 200 (201: loaded); 400 malformed JSON, unknown field, wrong type, bad task fields;
// 401 missing or wrong API key or admin token; 403 adapter loading disabled, or a path outside
// --adapter-root; 404 unknown adapter or path; 409 an adapter name taken; 413 body above
// max_body_bytes; 422 a value out of range or a limit exceeded (named), a bad adapter folder;
// 503 with Retry-After when the queue is full or the server is stopping; 504 when the
// request's deadline ("X-Deadline-Ms: N", milliseconds from its arrival) passed before it was
// answered (decoding stops at the next step); 500 when decoding failed. A client that closes its
// connection cancels its request (the metrics count a 499).
#include "http_serve.h"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "client_socket.h"
#include "compacter/core/error.h"
#include "compacter/serve/requests.h"
#include "compacter/serve/scheduler.h"

namespace compacter::cli {

namespace {

using Clock = std::chrono::steady_clock;
using serve::check_request;
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
  Histogram first_token{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
  Histogram per_token{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}};

  void request(const std::string& endpoint, int status, const std::string& adapter,
               double seconds) {
    std::lock_guard<std::mutex> lock(mutex);
    ++requests[{endpoint, status, adapter}];
    latency.add(seconds);
  }
  void token_times(double first, double per) {
    std::lock_guard<std::mutex> lock(mutex);
    first_token.add(first);
    if (per >= 0) per_token.add(per);
  }
  void batch(size_t inputs, double seconds) {
    std::lock_guard<std::mutex> lock(mutex);
    batch_inputs.add(static_cast<double>(inputs));
    batch_seconds.add(seconds);
  }
  std::string text(int64_t queued, int64_t running, const std::vector<serve::AdapterInfo>& adapters,
                   int64_t base_bytes) {
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
    out += cat("# HELP compacter_running_rows Rows decoding in the continuous batch.\n",
               "# TYPE compacter_running_rows gauge\ncompacter_running_rows ", running, "\n");
    out += cat("# HELP compacter_adapters Adapters served (the base model included).\n",
               "# TYPE compacter_adapters gauge\ncompacter_adapters ", adapters.size(), "\n");
    out +=
        "# HELP compacter_adapter_bytes Tensor bytes an adapter holds beside the base's (the "
        "base: its own).\n# TYPE compacter_adapter_bytes gauge\n";
    for (const serve::AdapterInfo& a : adapters)
      out += cat("compacter_adapter_bytes{adapter=\"", label_value(a.name), "\"} ",
                 a.name == serve::kBaseName ? base_bytes : a.own_bytes, "\n");
    latency.write(out, "compacter_request_duration_seconds",
                  "Time from receiving an HTTP request to its reply.");
    batch_inputs.write(out, "compacter_batch_inputs",
                       "Inputs the worker answered together at one batch boundary.");
    batch_seconds.write(out, "compacter_batch_duration_seconds",
                        "Time the worker took to answer one batch or decoding step.");
    first_token.write(out, "compacter_time_to_first_token_seconds",
                      "Time from receiving a request to its first token (step-by-step decoding).");
    per_token.write(out, "compacter_time_per_token_seconds",
                    "Time per generated token after the first, per request.");
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

// The tokens of one streamed input, handed from the worker to the HTTP thread.
struct TokenQueue {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<serve::StreamToken> tokens;
  void push(const serve::StreamToken& t) {
    std::lock_guard<std::mutex> lock(mutex);
    tokens.push_back(t);
    changed.notify_all();
  }
  // The tokens pushed so far, waiting up to `wait` for one when there is none.
  std::deque<serve::StreamToken> take(std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait_for(lock, wait, [&] { return !tokens.empty(); });
    std::deque<serve::StreamToken> out;
    out.swap(tokens);
    return out;
  }
};

// Whether a request's client went away (client_socket.h); its socket is looked up at the first
// question only, so that requests answered at once pay nothing.
class ClientWatch {
 public:
  explicit ClientWatch(const httplib::Request& req) : req_(req) {}
  bool gone() {
    if (!looked_) {
      fd_ = find_connection_socket(req_.local_port, req_.remote_addr, req_.remote_port);
      looked_ = true;
    }
    return fd_ >= 0 && peer_went_away(fd_);
  }

 private:
  const httplib::Request& req_;
  int fd_ = -1;
  bool looked_ = false;
};

// How often a handler waiting for decoding looks whether its client went away.
constexpr std::chrono::milliseconds kClientCheck{50};

// "data:<json>\n\n"
std::string sse(const nlohmann::json& event) {
  return "data:" + event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
}

// The folder `path` names under `root` (canonical): relative to root, or absolute inside it.
// Refused (RequestError) with a ".." component, when missing, or when it or a file in it
// resolves (symlinks followed) outside root.
std::string adapter_folder_under(const std::string& root, const std::string& path) {
  namespace fs = std::filesystem;
  check_request(!path.empty(), ErrorKind::bad_request, "\"path\" is empty");
  const fs::path given(path);
  for (const auto& part : given)
    check_request(part != "..", ErrorKind::forbidden, "\"path\" ", path,
                  ": \"..\" is not allowed (adapters load from under --adapter-root only)");
  const fs::path joined = given.is_absolute() ? given : fs::path(root) / given;
  std::error_code ec;
  const fs::path real = fs::canonical(joined, ec);
  check_request(!ec, ErrorKind::not_found, "\"path\" ", path, ": no such folder under ",
                "--adapter-root");
  auto inside = [&](const fs::path& p) {
    const std::string s = p.string();
    return s.size() > root.size() && s.compare(0, root.size(), root) == 0 && s[root.size()] == '/';
  };
  check_request(inside(real), ErrorKind::forbidden, "\"path\" ", path,
                ": resolves outside --adapter-root");
  check_request(fs::is_directory(real), ErrorKind::bad_request, "\"path\" ", path,
                ": not a folder");
  for (const auto& entry : fs::directory_iterator(real, ec)) {
    const fs::path file = fs::canonical(entry.path(), ec);
    check_request(!ec && inside(file), ErrorKind::forbidden, "\"path\" ", path, ": ",
                  entry.path().filename().string(), " resolves outside --adapter-root");
  }
  return real.string();
}

struct HttpServer {
  serve::AdapterServer& server;
  const HttpOptions& options;
  const serve::ServerLimits& limits;
  Metrics metrics;
  serve::Scheduler scheduler;
  // The served adapters as the handlers see them; changed on the worker (POST / DELETE
  // /adapters) under the mutex.
  mutable std::mutex adapters_mutex;
  std::set<std::string> adapters;
  std::vector<serve::AdapterInfo> adapter_infos;
  nlohmann::json adapters_json;
  nlohmann::json info_json;
  std::mutex admin_mutex;  // one load or unload at a time

  HttpServer(serve::AdapterServer& s, const HttpOptions& o)
      : server(s),
        options(o),
        limits(s.options().limits),
        scheduler(
            s, s.options().limits.max_queue,
            [this](size_t, size_t inputs, double seconds) { metrics.batch(inputs, seconds); },
            o.continuous) {
    refresh_adapters();  // the worker has not started anything yet
    info_json = info();
  }

  // Reads the server's adapters (on the worker, or before serving).
  void refresh_adapters() {
    std::vector<serve::AdapterInfo> infos = server.list();
    nlohmann::json j = adapter_list(infos);
    std::lock_guard<std::mutex> lock(adapters_mutex);
    adapters.clear();
    for (const auto& a : infos) adapters.insert(a.name);
    adapter_infos = std::move(infos);
    adapters_json = std::move(j);
  }

  // Parses a generate body; false after writing the error reply.
  bool parse(const httplib::Request& req, httplib::Response& res, const std::string& endpoint,
             bool stream, bool& is_list, std::vector<serve::Request>& requests) {
    auto fail = [&](const std::string& message, ErrorKind kind) {
      send_error(res, message, kind);
      metrics.request(endpoint, res.status, "", 0.0);
      return false;
    };
    try {
      requests = serve::parse_generate_body(req.body, limits, server.generation(),
                                            options.default_adapter, is_list);
    } catch (const serve::RequestError& e) {
      return fail(e.what(), e.kind());
    }
    if (stream) {
      if (is_list)
        return fail("POST /generate_stream takes one input, not a list", ErrorKind::bad_request);
      serve::Request& r = requests.front();
      if (r.labels) return fail("parameters.labels is not streamed", ErrorKind::invalid);
      const auto& g = r.generation ? *r.generation : server.generation();
      if (g.num_return_sequences > 1)
        return fail("parameters.num_return_sequences > 1 is not streamed", ErrorKind::invalid);
      r.details = true;  // the last event carries the details
    }
    std::lock_guard<std::mutex> lock(adapters_mutex);
    for (size_t i = 0; i < requests.size(); ++i)
      if (!adapters.count(requests[i].adapter)) {
        std::string known;
        for (const auto& name : adapters) known += (known.empty() ? "" : ", ") + name;
        send_error(res,
                   cat(is_list ? cat("inputs[", i, "]: ") : std::string(), "unknown adapter \"",
                       requests[i].adapter, "\" (serving: ", known, ")"),
                   ErrorKind::not_found);
        metrics.request(endpoint, res.status, "", 0.0);
        return false;
      }
    return true;
  }

  // A token sink that records each input's time to first token and passes tokens on.
  serve::TokenSink timed_sink(Clock::time_point start, size_t inputs,
                              std::function<void(size_t, const serve::StreamToken&)> next = {}) {
    auto firsts = std::make_shared<std::vector<double>>(inputs, -1.0);  // worker thread only
    return [this, start, firsts, next](size_t input, const serve::StreamToken& t) {
      if ((*firsts)[input] < 0) {
        (*firsts)[input] = std::chrono::duration<double>(Clock::now() - start).count();
        metrics.token_times((*firsts)[input], -1);
      }
      if (next) next(input, t);
    };
  }

  // The deadline a request sets with "X-Deadline-Ms: N" (milliseconds from its arrival), or
  // none; false after writing the error reply for a bad value.
  bool deadline_of(const httplib::Request& req, httplib::Response& res, const std::string& endpoint,
                   Clock::time_point start, Clock::time_point& deadline) {
    deadline = Clock::time_point::max();
    if (!req.has_header("X-Deadline-Ms")) return true;
    const std::string v = req.get_header_value("X-Deadline-Ms");
    if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string::npos ||
        std::stol(v) < 1) {
      send_error(res,
                 cat("X-Deadline-Ms: expected milliseconds from 1 to 999999999, got \"", v, "\""),
                 ErrorKind::bad_request);
      metrics.request(endpoint, res.status, "", 0.0);
      return false;
    }
    deadline = start + std::chrono::milliseconds(std::stol(v));
    return true;
  }

  void overloaded(httplib::Response& res, const std::string& endpoint, const std::string& adapter,
                  double seconds) {
    res.set_header("Retry-After", "1");
    send_error(res, 503,
               cat("the server is busy (max_queue = ", limits.max_queue,
                   " inputs waiting) or stopping; retry later"),
               "overloaded");
    metrics.request(endpoint, 503, adapter, seconds);
  }

  // Records the outcome of answered inputs; false after writing the first error's reply.
  bool check_replies(httplib::Response& res, const std::string& endpoint, bool is_list,
                     const std::vector<std::string>& names,
                     const std::vector<serve::Reply>& replies, double seconds) {
    for (size_t i = 0; i < replies.size(); ++i)
      if (!replies[i].error.empty()) {
        const int status = serve::http_status(replies[i].error_kind);
        for (const auto& name : names) metrics.request(endpoint, status, name, seconds);
        send_error(res, cat(is_list ? cat("inputs[", i, "]: ") : std::string(), replies[i].error),
                   replies[i].error_kind);
        return false;
      }
    for (const auto& name : names) metrics.request(endpoint, 200, name, seconds);
    return true;
  }

  void generate(const httplib::Request& req, httplib::Response& res) {
    const auto start = Clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
    bool is_list = false;
    std::vector<serve::Request> requests;
    if (!parse(req, res, "generate", false, is_list, requests)) return;
    Clock::time_point deadline;
    if (!deadline_of(req, res, "generate", start, deadline)) return;
    std::vector<std::string> names;
    for (const auto& r : requests) names.push_back(r.adapter);
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    auto future =
        scheduler.submit(std::move(requests), timed_sink(start, names.size()), cancelled, deadline);
    if (!future) return overloaded(res, "generate", names.front(), seconds());
    // A client that goes away cancels its request: greedy and sampled rows leave the batch at
    // the next step, a request not started yet is never decoded (nginx's 499 in the metrics).
    ClientWatch client(req);
    while (future->wait_for(kClientCheck) != std::future_status::ready)
      if (client.gone()) {
        *cancelled = true;
        for (const auto& name : names) metrics.request("generate", 499, name, seconds());
        return;
      }
    std::vector<serve::Reply> replies;
    try {
      replies = future->get();
    } catch (const std::exception& e) {
      send_error(res, cat("decoding failed: ", e.what()), ErrorKind::internal);
      metrics.request("generate", res.status, names.front(), seconds());
      return;
    }
    if (!check_replies(res, "generate", is_list, names, replies, seconds())) return;
    record_per_token(replies, start);
    if (!is_list) return send_json(res, 200, serve::generate_reply_json(replies.front()));
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : replies) out.push_back(serve::generate_reply_json(r));
    send_json(res, 200, out);
  }

  void record_per_token(const std::vector<serve::Reply>& replies, Clock::time_point start) {
    const double total = std::chrono::duration<double>(Clock::now() - start).count();
    for (const auto& r : replies)
      if (!r.sequences.empty() && r.sequences.front().sequence.tokens.size() > 1)
        metrics.token_times(
            -1, total / static_cast<double>(r.sequences.front().sequence.tokens.size()));
  }

  // TGI's events, one per token as decoded: {"index", "token": {"id", "text", "logprob",
  // "special"}, "generated_text": null, "details": null}, the last one with the whole text and
  // {"finish_reason", "generated_tokens", "seed"}. The first event waits for the first token,
  // so that an error before it still gets its status; a client that goes away cancels the
  // request (its rows leave the batch at the next step).
  void generate_stream(const httplib::Request& req, httplib::Response& res) {
    const auto start = Clock::now();
    auto seconds = [start] { return std::chrono::duration<double>(Clock::now() - start).count(); };
    bool is_list = false;
    std::vector<serve::Request> requests;
    if (!parse(req, res, "generate_stream", true, is_list, requests)) return;
    Clock::time_point deadline;
    if (!deadline_of(req, res, "generate_stream", start, deadline)) return;
    const std::string adapter = requests.front().adapter;
    auto queue = std::make_shared<TokenQueue>();
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    auto submitted = scheduler.submit(
        std::move(requests),
        timed_sink(start, 1, [queue](size_t, const serve::StreamToken& t) { queue->push(t); }),
        cancelled, deadline);
    if (!submitted) return overloaded(res, "generate_stream", adapter, seconds());
    auto future =
        std::make_shared<std::shared_future<std::vector<serve::Reply>>>(submitted->share());
    auto ready = [future] {
      return future->wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    };
    // Up to the first token, or the end (an error gets its own status).
    std::deque<serve::StreamToken> first;
    ClientWatch client(req);
    for (auto last_check = Clock::now(); first.empty() && !ready();) {
      first = queue->take(std::chrono::milliseconds(20));
      if (first.empty() && Clock::now() - last_check >= kClientCheck) {
        last_check = Clock::now();
        if (client.gone()) {
          *cancelled = true;
          metrics.request("generate_stream", 499, adapter, seconds());
          return;
        }
      }
    }
    if (first.empty()) {
      std::vector<serve::Reply> replies;
      try {
        replies = future->get();
      } catch (const std::exception& e) {
        send_error(res, cat("decoding failed: ", e.what()), ErrorKind::internal);
        metrics.request("generate_stream", res.status, adapter, seconds());
        return;
      }
      if (!check_replies(res, "generate_stream", false, {adapter}, replies, seconds())) return;
      // Decoded in one piece (beam search): every event now.
      std::string events;
      const serve::Reply& reply = replies.front();
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
          events += sse(e);
        }
      }
      res.status = 200;
      res.set_header("Cache-Control", "no-cache");
      res.set_content(events, "text/event-stream");
      return;
    }
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    auto pending = std::make_shared<std::deque<serve::StreamToken>>(std::move(first));
    res.set_chunked_content_provider("text/event-stream", [this, queue, cancelled, future, ready,
                                                           pending, adapter, start, seconds](
                                                              size_t, httplib::DataSink& sink) {
      std::optional<nlohmann::json> held;  // the latest event, sent once the next is known
      size_t index = 0;
      auto write = [&](const nlohmann::json& e) {
        const std::string text = sse(e);
        return sink.is_writable() && sink.write(text.data(), text.size());
      };
      for (;;) {
        const bool done = ready();  // tokens all pushed before the replies are set
        std::deque<serve::StreamToken> tokens;
        tokens.swap(*pending);
        for (auto& t : queue->take(std::chrono::milliseconds(done ? 0 : 20)))
          tokens.push_back(std::move(t));
        for (const serve::StreamToken& t : tokens) {
          if (held && !write(*held)) {
            *cancelled = true;
            metrics.request("generate_stream", 499, adapter, seconds());
            return false;
          }
          held = nlohmann::json{
              {"index", ++index},
              {"token",
               {{"id", t.id}, {"text", t.text}, {"logprob", t.logprob}, {"special", t.special}}},
              {"generated_text", nullptr},
              {"details", nullptr}};
        }
        if (!done) {
          if (!sink.is_writable()) {
            *cancelled = true;
            metrics.request("generate_stream", 499, adapter, seconds());
            return false;
          }
          continue;
        }
        nlohmann::json last;
        try {
          const std::vector<serve::Reply> replies = future->get();
          const serve::Reply& reply = replies.front();
          if (!reply.error.empty()) {
            last = serve::error_json(reply.error, reply.error_kind);
          } else {
            const nlohmann::json details =
                serve::sequence_details_json(reply.sequences.front(), reply, false);
            last = held ? *held : nlohmann::json::object();
            last["generated_text"] = reply.output;
            last["details"] = {{"finish_reason", details["finish_reason"]},
                               {"generated_tokens", details["generated_tokens"]},
                               {"seed", details["seed"]}};
            record_per_token(replies, start);
          }
          metrics.request("generate_stream", reply.error.empty() ? 200 : 500, adapter, seconds());
        } catch (const std::exception& e) {
          last = serve::error_json(cat("decoding failed: ", e.what()), ErrorKind::internal);
          metrics.request("generate_stream", 500, adapter, seconds());
        }
        write(last);
        sink.done();
        return true;
      }
    });
  }

  // POST /adapters {"name", "path"}: loads (off the worker) and serves an adapter.
  void load_adapter(const httplib::Request& req, httplib::Response& res) {
    const auto start = Clock::now();
    try {
      const serve::AdapterLoadBody body = serve::parse_adapter_load_body(req.body);
      const std::string& name = body.name;
      const std::string dir = adapter_folder_under(options.adapter_root, body.path);
      std::lock_guard<std::mutex> admin(admin_mutex);
      {
        std::lock_guard<std::mutex> lock(adapters_mutex);
        check_request(!adapters.count(name), ErrorKind::conflict, "an adapter named \"", name,
                      "\" is served already (DELETE /adapters/", name, " first)");
      }
      serve::LoadedAdapter loaded;
      try {
        loaded = server.load(name, dir);  // off the worker: traffic goes on
      } catch (const Error& e) {
        throw serve::RequestError(ErrorKind::invalid, cat("cannot load ", dir, ": ", e.what()));
      }
      auto task = std::make_shared<serve::LoadedAdapter>(std::move(loaded));
      auto done = scheduler.run([this, task](serve::AdapterServer& s) {
        s.add(std::move(*task));
        refresh_adapters();
      });
      check_request(done.has_value(), ErrorKind::unavailable, "the server is stopping");
      done->get();
      nlohmann::json out;
      {
        std::lock_guard<std::mutex> lock(adapters_mutex);
        for (const auto& a : adapters_json)
          if (a["name"] == name) out = a;
      }
      send_json(res, 201, out);
      metrics.request("adapters", 201, name,
                      std::chrono::duration<double>(Clock::now() - start).count());
    } catch (const serve::RequestError& e) {
      send_error(res, e.what(), e.kind());
      metrics.request("adapters", res.status, "", 0.0);
    }
  }

  // DELETE /adapters/NAME: requests already decoding for it finish; later ones get 404.
  void unload_adapter(const std::string& name, httplib::Response& res) {
    try {
      check_request(name != serve::kBaseName, ErrorKind::invalid,
                    "the base model cannot be unloaded");
      std::lock_guard<std::mutex> admin(admin_mutex);
      {
        std::lock_guard<std::mutex> lock(adapters_mutex);
        check_request(adapters.count(name) > 0, ErrorKind::not_found, "no adapter named \"", name,
                      "\"");
      }
      auto done = scheduler.run([this, name](serve::AdapterServer& s) {
        s.remove(name);
        refresh_adapters();
      });
      check_request(done.has_value(), ErrorKind::unavailable, "the server is stopping");
      done->get();
      send_json(res, 200, {{"name", name}, {"unloaded", true}});
      metrics.request("adapters", 200, name, 0.0);
    } catch (const serve::RequestError& e) {
      send_error(res, e.what(), e.kind());
      metrics.request("adapters", res.status, "", 0.0);
    }
  }

  nlohmann::json info() const {
    const train::BaseModel& base = server.base();
    nlohmann::json j = {{"model_id", options.model_dir},
                        {"model_dtype", dtype_name(base.precision.weights)},
                        {"autocast_bf16", base.precision.autocast},
                        // TGI's field: the quantisation of the base's linear layers, or null.
                        {"quantize", base.precision.int8 ? nlohmann::json("int8") : nullptr},
                        {"model_device_type", base.device.str()},
                        {"version", COMPACTER_VERSION},
                        {"router", "compacter serve --http"},
                        {"limits", options::to_json(limits)},
                        {"max_batch_size", server.options().batch_size},
                        {"max_source_length", server.options().max_source_length},
                        {"continuous_batching", options.continuous},
                        {"mixed_adapter_batches", server.options().mixed_batches},
                        {"runtime_adapters", !options.admin_token.empty()},
                        {"default_parameters", options::to_json(server.generation())},
                        {"default_adapter", or_null(options.default_adapter)}};
    if (!server.options().labels.empty()) j["labels"] = server.options().labels;
    return j;
  }

  nlohmann::json adapter_list(const std::vector<serve::AdapterInfo>& infos) const {
    nlohmann::json out = nlohmann::json::array();
    for (const serve::AdapterInfo& a : infos) {
      nlohmann::json j = {{"name", a.name},
                          {"method", or_null(a.method)},
                          {"task", or_null(a.task)},
                          {"dir", or_null(a.dir)},
                          {"own_parameters", a.own_parameters},
                          {"own_bytes", a.own_bytes},
                          {"base_fingerprint", or_null(a.base_fingerprint)},
                          {"load_seconds", a.load_seconds},
                          {"mixed_batches", a.mixed_refusal.empty()}};
      if (!a.mixed_refusal.empty()) j["mixed_batches_refused"] = a.mixed_refusal;
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
  // One handler thread per connection being served (cpp-httplib's default is 8, which would
  // cap the requests decoding together at 8 and queue the rest unseen); they mostly wait for
  // the worker, so many are cheap.
  check_usage(state.limits.max_connections >= 1, "--max-connections must be at least 1, got ",
              state.limits.max_connections);
  const size_t threads = static_cast<size_t>(state.limits.max_connections);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_keep_alive_timeout(2);  // idle keep-alive connections delay a shutdown this long
  // Auth: POST / DELETE /adapters need the admin token; every other endpoint the API key (when
  // one is set; the admin token is accepted there too).
  http.set_pre_routing_handler([&options](const httplib::Request& req, httplib::Response& res) {
    const std::string given = req.get_header_value("Authorization");
    const bool admin_route = (req.method == "POST" && req.path == "/adapters") ||
                             (req.method == "DELETE" && req.path.rfind("/adapters/", 0) == 0);
    const bool admin =
        !options.admin_token.empty() && same_secret(given, "Bearer " + options.admin_token);
    if (admin_route) {
      if (options.admin_token.empty()) {
        send_error(res, 403,
                   "loading and unloading adapters at run time is off (start the server with "
                   "--admin-token and --adapter-root)",
                   "forbidden");
        return httplib::Server::HandlerResponse::Handled;
      }
      if (admin) return httplib::Server::HandlerResponse::Unhandled;
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, 401, "missing or wrong admin token (send \"Authorization: Bearer TOKEN\")",
                 "unauthorized");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (options.api_key.empty() || admin || same_secret(given, "Bearer " + options.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    send_error(res, 401, "missing or wrong API key (send \"Authorization: Bearer KEY\")",
               "unauthorized");
    return httplib::Server::HandlerResponse::Handled;
  });
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
                         "GET /adapters, POST /adapters, DELETE /adapters/NAME, GET /metrics)"),
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
    std::lock_guard<std::mutex> lock(state.adapters_mutex);
    send_json(res, 200, state.adapters_json);
  });
  http.Post("/adapters", [&state](const httplib::Request& req, httplib::Response& res) {
    state.load_adapter(req, res);
  });
  http.Delete(R"(/adapters/([^/]+))",
              [&state](const httplib::Request& req, httplib::Response& res) {
                state.unload_adapter(req.matches[1], res);
              });
  http.Get("/metrics", [&state](const httplib::Request&, httplib::Response& res) {
    std::vector<serve::AdapterInfo> infos;
    {
      std::lock_guard<std::mutex> lock(state.adapters_mutex);
      infos = state.adapter_infos;
    }
    res.set_content(
        state.metrics.text(state.scheduler.queued_inputs(), state.scheduler.running_rows(), infos,
                           state.server.base_bytes()),
        "text/plain; version=0.0.4");
  });

  // The listening socket: SO_REUSEADDR but not httplib's default SO_REUSEPORT (with it a second
  // server on the same port would start and share the traffic instead of failing), and a
  // backlog of SOMAXCONN instead of httplib's 5, so that a burst of clients is not dropped
  // while they connect (seen as replies lost with 32 and more clients at once).
  int listening = -1;
  http.set_socket_options([&listening](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listening = sock;
  });
  int port = options.port;
  if (port == 0) {
    port = http.bind_to_any_port(options.host);
    check(port > 0, "--http ", options.host, ":0: cannot listen on a free port of ", options.host);
  } else {
    check(http.bind_to_port(options.host, port), "--http ", options.host, ":", port,
          ": cannot listen there (in use, or not an address of this machine)");
  }
  if (listening >= 0) ::listen(listening, SOMAXCONN);  // raises the backlog; keeps listening
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
  progress.info(
      cat("listening on http://", shown_host, ":", port,
          options.api_key.empty() ? "" : " (API key required)",
          options.admin_token.empty() ? "" : "; adapters load from under " + options.adapter_root));
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

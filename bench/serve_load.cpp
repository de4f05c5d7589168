// Load test of `compacter serve --http` (issue #11), loopback only, bounded in requests and
// time: starts the server on 127.0.0.1 with K random adapters of one method on a given base
// model, then for each (clients N, adapters K) runs N concurrent clients that each send
// /generate_stream requests one after another (greedy, --max-new-tokens tokens; client c's
// request r goes to adapter (c + r) mod K) until --requests requests are answered or
// --max-seconds pass, and reports requests/s, generated tokens/s, p50/p95/p99 latency and time
// to first token, 503s and failures. One JSON document on stdout; progress on stderr.
//
//   bench/serve_load --compacter build/compacter --model MODEL --tokenizer spiece.model \
//       --work /tmp/load --clients 1,8,32,128 --adapters 1,8,64 --requests 128
//
// The adapters are written by this program (peft::attach with seed k, then N(0, 0.1^2) noise
// on the trainable tensors so that they differ). Not a Google Benchmark: built beside them.
//
// Memory per adapter (--memory 1,10,100,1000): instead of the load scenarios, starts the server
// with the base alone (admin token, --adapter-root WORK), answers one request, then loads adapter
// a0's folder again and again under new names through POST /adapters, and reads the server's
// resident memory (VmRSS of /proc/PID/status) at each count; reports the growth per adapter
// against the base alone, the adapters' own tensor bytes (GET /adapters), and checks with one
// request that the last adapter answers.
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "compacter/nn/checkpoint.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string compacter = "build/compacter", model, tokenizer, work = "/tmp/compacter-load";
  std::string method = "compacter++";
  std::vector<int> clients = {1, 8, 32, 128}, adapters = {1, 8, 64};
  int requests = 128;         // per scenario, at most
  double max_seconds = 60.0;  // per scenario, at most
  int max_new_tokens = 16;
  int vocab_rows = 32100;
  std::vector<std::string> server_flags;  // passed on to `serve`
  std::vector<int> memory;                // adapter counts to read the memory at (--memory)
};

std::vector<int> int_list(const std::string& s) {
  std::vector<int> out;
  size_t from = 0;
  while (from <= s.size()) {
    const size_t comma = s.find(',', from);
    out.push_back(std::stoi(s.substr(from, comma - from)));
    if (comma == std::string::npos) break;
    from = comma + 1;
  }
  return out;
}

// The server process, its stderr read by a thread; port once "listening on" is printed.
class Server {
 public:
  explicit Server(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 2);
      close(fds[0]);
      close(fds[1]);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    reader_ = std::thread([this, fd = fds[0]] {
      char buf[4096];
      for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) {
        std::lock_guard<std::mutex> lock(mutex_);
        err_.append(buf, static_cast<size_t>(n));
      }
      close(fd);
    });
    const std::regex address("listening on http://127\\.0\\.0\\.1:([0-9]+)");
    for (int i = 0; i < 1200 && port_ == 0; ++i) {  // up to 120 s to load
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::lock_guard<std::mutex> lock(mutex_);
      std::smatch m;
      if (std::regex_search(err_, m, address)) port_ = std::stoi(m[1]);
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) break;
    }
    if (port_ == 0) throw std::runtime_error("the server did not start: " + err());
  }
  ~Server() {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    if (reader_.joinable()) reader_.join();
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string err() {
    std::lock_guard<std::mutex> lock(mutex_);
    return err_;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::thread reader_;
  std::mutex mutex_;
  std::string err_;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double at = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(at);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (at - static_cast<double>(lo));
}

nlohmann::json scenario(int port, int clients, int adapters, const Options& o) {
  std::mutex mutex;
  std::vector<double> latency, first_token;
  nlohmann::json failures = nlohmann::json::array();  // the first few failures, why
  int64_t ok = 0, overloaded = 0, failed = 0, tokens = 0;
  std::atomic<int> started{0};
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(o.max_seconds);
  const char* texts[] = {"translate English to German: The house is wonderful.",
                         "summarize: the quick brown fox jumps over the lazy dog",
                         "cola sentence: the cat sat on the mat", "hello world"};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", port);
      client.set_connection_timeout(10);
      client.set_read_timeout(static_cast<time_t>(o.max_seconds + 60));
      for (int r = 0;; ++r) {
        if (Clock::now() > deadline || started.fetch_add(1) >= o.requests) return;
        const std::string adapter = "a" + std::to_string((c + r) % adapters);
        httplib::Request req;
        req.method = "POST";
        req.path = "/generate_stream";
        req.set_header("Content-Type", "application/json");
        req.body = nlohmann::json{{"inputs", texts[(c + r) % 4]},
                                  {"parameters",
                                   {{"adapter", adapter}, {"max_new_tokens", o.max_new_tokens}}}}
                       .dump();
        const auto sent = Clock::now();
        double first = -1;
        int64_t events = 0;
        std::string body;
        req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
          if (first < 0) first = std::chrono::duration<double>(Clock::now() - sent).count();
          body.append(data, n);
          return true;
        };
        auto res = client.send(req);
        const double took = std::chrono::duration<double>(Clock::now() - sent).count();
        for (size_t at = 0; (at = body.find("data:", at)) != std::string::npos; at += 5) ++events;
        std::lock_guard<std::mutex> lock(mutex);
        if (res && res->status == 200 && body.find("\"generated_text\":\"") != std::string::npos) {
          ++ok;
          tokens += events;
          latency.push_back(took);
          first_token.push_back(first);
        } else if (res && res->status == 503) {
          ++overloaded;
        } else {
          ++failed;
          if (failures.size() < 5)
            failures.push_back(res ? "HTTP " + std::to_string(res->status) + ": " +
                                         body.substr(0, 300)
                                   : "no reply: " + httplib::to_string(res.error()));
        }
      }
    });
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return {{"clients", clients},
          {"adapters", adapters},
          {"requests_ok", ok},
          {"requests_503", overloaded},
          {"requests_failed", failed},
          {"seconds", seconds},
          {"requests_per_second", static_cast<double>(ok) / seconds},
          {"tokens_per_second", static_cast<double>(tokens) / seconds},
          {"latency_p50_s", percentile(latency, 50)},
          {"latency_p95_s", percentile(latency, 95)},
          {"latency_p99_s", percentile(latency, 99)},
          {"first_token_p50_s", percentile(first_token, 50)},
          {"first_token_p95_s", percentile(first_token, 95)},
          {"first_token_p99_s", percentile(first_token, 99)},
          {"failures", failures}};
}

// The resident memory of process `pid` in MiB (VmRSS), or -1.
double rss_mib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  return -1.0;
}

// One greedy request to `adapter`; whether it was answered.
bool answers(httplib::Client& client, const std::string& adapter) {
  const std::string body =
      nlohmann::json{{"inputs", "summarize: the quick brown fox"},
                     {"parameters", {{"adapter", adapter}, {"max_new_tokens", 4}}}}
          .dump();
  auto res = client.Post("/generate", body, "application/json");
  return res && res->status == 200;
}

// --memory: the server's resident memory as adapters are loaded at run time (see the top).
nlohmann::json memory_scenario(const Options& o) {
  const std::string token = "serve-load-admin";
  std::vector<std::string> args = {o.compacter,      "serve",
                                   "--model",        o.model,
                                   "--http",         "127.0.0.1:0",
                                   "--admin-token",  token,
                                   "--adapter-root", std::filesystem::canonical(o.work).string()};
  if (!o.tokenizer.empty()) args.insert(args.end(), {"--tokenizer", o.tokenizer});
  for (const auto& f : o.server_flags) args.push_back(f);
  Server server(args);
  httplib::Client client("127.0.0.1", server.port());
  client.set_read_timeout(600);
  const httplib::Headers admin = {{"Authorization", "Bearer " + token}};
  if (!answers(client, "base")) throw std::runtime_error("the base did not answer");
  const double base = rss_mib(server.pid());
  nlohmann::json points = nlohmann::json::array();
  const int most = *std::max_element(o.memory.begin(), o.memory.end());
  const auto start = Clock::now();
  for (int k = 1; k <= most; ++k) {
    const std::string body =
        nlohmann::json{{"name", "m" + std::to_string(k)}, {"path", "a0"}}.dump();
    auto res = client.Post("/adapters", admin, body, "application/json");
    if (!res || (res->status != 200 && res->status != 201))
      throw std::runtime_error("POST /adapters failed at adapter " + std::to_string(k) + ": " +
                               (res ? res->body : std::string("no reply")));
    if (std::find(o.memory.begin(), o.memory.end(), k) == o.memory.end()) continue;
    const double rss = rss_mib(server.pid());
    int64_t own = 0;
    if (auto list = client.Get("/adapters"); list && list->status == 200)
      for (const auto& a : nlohmann::json::parse(list->body))
        if (a.contains("own_bytes") && a["name"] != "base") own += a["own_bytes"].get<int64_t>();
    nlohmann::json p = {
        {"adapters", k},
        {"rss_mib", rss},
        {"growth_per_adapter_mib", (rss - base) / k},
        {"own_tensor_mib_per_adapter", static_cast<double>(own) / k / 1048576.0},
        {"seconds_loading", std::chrono::duration<double>(Clock::now() - start).count()}};
    std::cerr << "serve_load: " << p.dump() << "\n";
    points.push_back(p);
  }
  const bool last_answers = answers(client, "m" + std::to_string(most));
  return {{"base_rss_mib", base}, {"points", points}, {"last_adapter_answers", last_answers}};
}

}  // namespace

int run(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--compacter")
      o.compacter = value();
    else if (a == "--model")
      o.model = value();
    else if (a == "--tokenizer")
      o.tokenizer = value();
    else if (a == "--work")
      o.work = value();
    else if (a == "--method")
      o.method = value();
    else if (a == "--clients")
      o.clients = int_list(value());
    else if (a == "--adapters")
      o.adapters = int_list(value());
    else if (a == "--requests")
      o.requests = std::stoi(value());
    else if (a == "--max-seconds")
      o.max_seconds = std::stod(value());
    else if (a == "--max-new-tokens")
      o.max_new_tokens = std::stoi(value());
    else if (a == "--server-flag")
      o.server_flags.push_back(value());
    else if (a == "--memory")
      o.memory = int_list(value());
    else {
      std::cerr << "serve_load: unknown argument " << a
                << " (see the top of bench/serve_load.cpp)\n";
      return 2;
    }
  }
  if (o.model.empty()) {
    std::cerr << "serve_load: --model DIR is required\n";
    return 2;
  }
  // Bounds: a load test, not a stress test of this machine.
  o.requests = std::min(o.requests, 2048);
  o.max_seconds = std::min(o.max_seconds, 600.0);
  for (int& c : o.clients) c = std::max(1, std::min(c, 256));
  for (int& m : o.memory) m = std::max(1, std::min(m, 10000));
  if (!o.memory.empty()) o.adapters = {1};  // adapter a0 is loaded again and again
  const int most = *std::max_element(o.adapters.begin(), o.adapters.end());
  std::filesystem::create_directories(o.work);
  {
    torch::NoGradGuard no_grad;
    for (int k = 0; k < most; ++k) {
      const std::string dir = o.work + "/a" + std::to_string(k);
      if (std::filesystem::exists(dir + "/" + compacter::peft::kAdapterConfigFile)) continue;
      compacter::nn::T5Model model = compacter::nn::load_t5(o.model).model;
      model->resize_vocab(o.vocab_rows);
      compacter::peft::PeftOptions po = compacter::peft::method_defaults(o.method);
      compacter::peft::attach(o.method, po, *model, static_cast<uint64_t>(k + 1));
      torch::manual_seed(k + 1);
      for (auto& p : compacter::peft::trainable_parameters(*model))
        p.add_(torch::randn_like(p) * 0.1);
      compacter::peft::save_adapter(*model, {o.method, po, static_cast<uint64_t>(k + 1)}, dir);
    }
  }
  if (!o.memory.empty()) {
    nlohmann::json out = {{"model", o.model},
                          {"method", o.method},
                          {"server_flags", o.server_flags},
                          {"memory", memory_scenario(o)}};
    std::cout << out.dump(2) << std::endl;
    return 0;
  }
  std::vector<std::string> args = {o.compacter, "serve", "--model", o.model};
  if (!o.tokenizer.empty()) args.insert(args.end(), {"--tokenizer", o.tokenizer});
  for (int k = 0; k < most; ++k)
    args.insert(args.end(),
                {"--adapter", "a" + std::to_string(k) + "=" + o.work + "/a" + std::to_string(k)});
  // Every request generates exactly max_new_tokens tokens (no early </s>): fixed work.
  const std::string tokens = std::to_string(std::max(o.max_new_tokens, 1));
  args.insert(args.end(), {"--http", "127.0.0.1:0", "--max-queue", "1024",
                           "--max-request-new-tokens", tokens, "--min-new-tokens", tokens});
  for (const auto& f : o.server_flags) args.push_back(f);
  Server server(args);
  std::cerr << "serve_load: server on port " << server.port() << " with " << most << " " << o.method
            << " adapters\n";
  nlohmann::json out = {{"model", o.model},
                        {"method", o.method},
                        {"max_new_tokens", o.max_new_tokens},
                        {"requests_per_scenario", o.requests},
                        {"max_seconds_per_scenario", o.max_seconds},
                        {"server_flags", o.server_flags},
                        {"scenarios", nlohmann::json::array()}};
  scenario(server.port(), 1, 1, [&] {  // warm-up
    Options w = o;
    w.requests = 2;
    return w;
  }());
  for (int k : o.adapters)
    for (int c : o.clients) {
      nlohmann::json r = scenario(server.port(), c, k, o);
      std::cerr << "serve_load: " << r.dump() << "\n";
      out["scenarios"].push_back(r);
    }
  // What the server counted, by endpoint and status (failures on our side show up here too).
  httplib::Client client("127.0.0.1", server.port());
  nlohmann::json statuses = nlohmann::json::object();
  if (auto m = client.Get("/metrics"); m && m->status == 200) {
    const std::regex line(
        "compacter_requests_total\\{endpoint=\"([a-z_]+)\",status=\"([0-9]+)\"[^}]*\\} "
        "([0-9.e+]+)");
    for (auto it = std::sregex_iterator(m->body.begin(), m->body.end(), line);
         it != std::sregex_iterator(); ++it) {
      const std::string key = (*it)[1].str() + " " + (*it)[2].str();
      statuses[key] = statuses.value(key, 0.0) + std::stod((*it)[3].str());
    }
  }
  out["server_counted"] = statuses;
  std::cout << out.dump(2) << std::endl;
  return 0;
}

int main(int argc, char** argv) {
  try {  // caught, so that the server process is stopped on the way out (~Server)
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "serve_load: " << e.what() << "\n";
    return 1;
  }
}

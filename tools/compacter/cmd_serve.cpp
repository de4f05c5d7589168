// compacter serve: several adapters on one base model held once in memory. Each adapter gets a
// model that shares the base's tensors (nn::share_weights) and owns only the adapter's own (its
// new modules, and the base tensors it retrains: layer norms, or all of them for `full`).
// Requests are JSON Lines on stdin, {"adapter": NAME, "text": "...", "id": ANY}; each gets one
// line on stdout, in order, {"id", "adapter", "output"} or {"id", "line", "error"}. Requests that
// are waiting when a batch starts are decoded together, grouped by adapter.
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "common.h"
#include "compacter/core/error.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "compacter/train/evaluate.h"

namespace compacter::cli {
namespace {

constexpr const char* kBaseName = "base";

struct ServeCli {
  ModelOptions model;
  std::string tokenizer;
  std::vector<std::string> adapters;  // NAME=DIR or DIR
  int64_t batch_size = 32;
  int64_t max_length = 20;
  int64_t max_source_length = 512;
};

// Lines of stdin in batches: blocks for the first line of a batch, then takes every complete line
// already readable, up to `max`. A last line without a newline counts at end of input.
class LineBatches {
 public:
  bool next(std::vector<std::string>& out, size_t max) {
    out.clear();
    while (out.size() < max) {
      const size_t end = buffer_.find('\n', start_);
      if (end != std::string::npos) {
        std::string line = buffer_.substr(start_, end - start_);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        out.push_back(std::move(line));
        start_ = end + 1;
        continue;
      }
      if (eof_) {
        if (start_ < buffer_.size()) out.push_back(buffer_.substr(start_));
        start_ = buffer_.size();
        break;
      }
      if (!out.empty() && !readable_now()) break;
      fill();
    }
    return !out.empty();
  }

 private:
  static bool readable_now() {
    pollfd p{STDIN_FILENO, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }
  void fill() {
    buffer_.erase(0, start_);
    start_ = 0;
    char chunk[1 << 16];
    ssize_t n;
    do {
      n = ::read(STDIN_FILENO, chunk, sizeof chunk);
    } while (n < 0 && errno == EINTR);
    check(n >= 0, "reading requests from stdin: ", std::strerror(errno));
    if (n == 0) eof_ = true;
    buffer_.append(chunk, static_cast<size_t>(n > 0 ? n : 0));
  }
  std::string buffer_;
  size_t start_ = 0;
  bool eof_ = false;
};

// The distinct storages of `model`'s parameters and buffers, with their sizes in bytes.
std::map<const void*, int64_t> storages_of(torch::nn::Module& model) {
  std::map<const void*, int64_t> out;
  auto add = [&](const torch::Tensor& t) {
    if (t.defined()) out[t.storage().data()] = static_cast<int64_t>(t.storage().nbytes());
  };
  for (const auto& t : model.parameters(true)) add(t);
  for (const auto& t : model.buffers(true)) add(t);
  return out;
}

// Bytes of the storages in `own` that are not in `shared`.
int64_t bytes_not_in(const std::map<const void*, int64_t>& own,
                     const std::map<const void*, int64_t>& shared) {
  int64_t bytes = 0;
  for (const auto& [storage, size] : own)
    if (!shared.count(storage)) bytes += size;
  return bytes;
}

std::string human_bytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1e9) return cat(static_cast<int64_t>(b / 1e8) / 10.0, " GB");
  if (b >= 1e6) return cat(static_cast<int64_t>(b / 1e5) / 10.0, " MB");
  return cat(static_cast<int64_t>(b / 1e2) / 10.0, " kB");
}

// NAME=DIR, or DIR named by its last component (best_adapter: the run folder's name).
std::pair<std::string, std::string> split_adapter_arg(const std::string& arg) {
  const size_t eq = arg.find('=');
  std::string name, dir;
  if (eq != std::string::npos) {
    name = arg.substr(0, eq);
    dir = arg.substr(eq + 1);
  } else {
    dir = arg;
    std::string trimmed = dir;
    while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
    std::vector<std::string> parts;
    size_t from = 0;
    for (size_t slash; (slash = trimmed.find('/', from)) != std::string::npos; from = slash + 1)
      parts.push_back(trimmed.substr(from, slash - from));
    parts.push_back(trimmed.substr(from));
    name = parts.back();
    if (name == "best_adapter" && parts.size() > 1) name = parts[parts.size() - 2];
  }
  check(!name.empty() && !dir.empty(), "--adapter ", arg, ": expected NAME=DIR or DIR");
  return {name, dir};
}

struct Request {
  int64_t line = 0;
  nlohmann::json id;
  std::string adapter, text, error;
};

Request parse_request(const std::string& text, int64_t line, const std::string& only_adapter) {
  Request r;
  r.line = line;
  r.id = line;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    r.error = cat("line ", line, ": not JSON (expected {\"adapter\": NAME, \"text\": \"...\"})");
    return r;
  }
  if (!j.is_object()) {
    r.error = cat("line ", line, ": expected a JSON object, got ", j.type_name());
    return r;
  }
  if (j.contains("id")) r.id = j["id"];
  for (const auto& item : j.items()) {
    if (item.key() != "id" && item.key() != "adapter" && item.key() != "text") {
      r.error =
          cat("line ", line, ": unknown field \"", item.key(), "\" (expected id, adapter, text)");
      return r;
    }
  }
  if (!j.contains("text") || !j["text"].is_string()) {
    r.error = cat("line ", line, ": \"text\" must be a string");
    return r;
  }
  r.text = j["text"].get<std::string>();
  if (j.contains("adapter")) {
    if (!j["adapter"].is_string()) {
      r.error = cat("line ", line, ": \"adapter\" must be a string");
      return r;
    }
    r.adapter = j["adapter"].get<std::string>();
  } else if (!only_adapter.empty()) {
    r.adapter = only_adapter;
  } else {
    r.error = cat("line ", line, ": \"adapter\" is required when several adapters are served");
  }
  return r;
}

void run_serve(const ServeCli& o) {
  check(o.batch_size >= 1, "--batch-size must be at least 1, got ", o.batch_size);
  check(o.max_length >= 2, "--max-length must be at least 2, got ", o.max_length);
  const auto tok = T5Tokenizer::load(tokenizer_path(o.tokenizer, o.model.model_dir));
  nn::T5Model base = load_model(o.model);
  resize_to_tokenizer(*base, o.model, tok);
  const auto base_storages = storages_of(*base);
  std::cerr << "compacter: base model " << o.model.model_dir << " ("
            << human_bytes(bytes_not_in(base_storages, {})) << ")\n";

  std::map<std::string, nn::T5Model> served = {{kBaseName, base}};
  std::string first;  // the first adapter's name
  for (const std::string& arg : o.adapters) {
    auto [name, dir] = split_adapter_arg(arg);
    check(!served.count(name), "--adapter ", arg, ": the name \"", name, "\" is ",
          name == kBaseName ? "reserved for the base model" : "given twice");
    nn::T5Model model = nn::share_weights(*base);
    const std::string method = peft::load_adapter(*model, dir).method;
    model->eval();
    std::cerr << "compacter: adapter " << name << " = " << dir << " (" << method << ", "
              << human_bytes(bytes_not_in(storages_of(*model), base_storages)) << " of its own)\n";
    served.emplace(name, model);
    if (first.empty()) first = name;
  }
  // Requests may leave "adapter" out when there is one to choose (the base model counts only
  // when alone).
  const std::string only = o.adapters.empty()       ? std::string(kBaseName)
                           : o.adapters.size() == 1 ? first
                                                    : "";
  std::cerr << "compacter: reading JSON Lines requests on stdin ({\"adapter\": NAME, \"text\": "
               "\"...\", \"id\": ...}; adapters:";
  for (const auto& [name, model] : served) std::cerr << " " << name;
  std::cerr << ")\n";

  torch::NoGradGuard no_grad;
  LineBatches input;
  std::vector<std::string> lines;
  int64_t line_no = 0, answered = 0, failed = 0;
  while (input.next(lines, static_cast<size_t>(o.batch_size))) {
    std::vector<Request> requests;
    for (const std::string& text : lines) {
      ++line_no;
      if (text.find_first_not_of(" \t") == std::string::npos) continue;  // blank line
      requests.push_back(parse_request(text, line_no, only));
      Request& r = requests.back();
      if (r.error.empty() && !served.count(r.adapter)) {
        std::string known;
        for (const auto& [name, model] : served) known += (known.empty() ? "" : ", ") + name;
        r.error =
            cat("line ", r.line, ": unknown adapter \"", r.adapter, "\" (serving: ", known, ")");
      }
    }
    std::map<std::string, std::vector<size_t>> by_adapter;
    for (size_t i = 0; i < requests.size(); ++i)
      if (requests[i].error.empty()) by_adapter[requests[i].adapter].push_back(i);
    std::vector<std::string> outputs(requests.size());
    for (const auto& [name, indices] : by_adapter) {
      std::vector<std::vector<int64_t>> sources;
      for (size_t i : indices) sources.push_back(tok.encode(requests[i].text, o.max_source_length));
      const auto texts =
          train::generate_texts(*served.at(name), tok, sources, o.batch_size, o.max_length);
      for (size_t k = 0; k < indices.size(); ++k) outputs[indices[k]] = texts[k];
    }
    for (size_t i = 0; i < requests.size(); ++i) {
      const Request& r = requests[i];
      nlohmann::json reply = {{"id", r.id}};
      if (r.error.empty()) {
        reply["adapter"] = r.adapter;
        reply["output"] = outputs[i];
        ++answered;
      } else {
        reply["line"] = r.line;
        reply["error"] = r.error;
        ++failed;
      }
      std::cout << reply.dump() << "\n";
    }
    std::cout.flush();
  }
  std::cerr << "compacter: answered " << answered << " request(s), " << failed << " failed\n";
  check(failed == 0, failed, " of ", answered + failed,
        " request(s) failed (their lines on stdout carry the error)");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeCli>();
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve several adapters on one base model held once in memory: JSON Lines requests on "
      "stdin ({\"adapter\": NAME, \"text\": \"...\", \"id\": ...}), one JSON line per request on "
      "stdout, in order; \"base\" names the model without adapter");
  add_model_options(*cmd, o->model);
  cmd->add_option("--tokenizer", o->tokenizer, "spiece.model (default: the model folder's)");
  cmd->add_option("-a,--adapter", o->adapters,
                  "NAME=DIR, or DIR (named by its folder; RUN/best_adapter by RUN); repeatable");
  cmd->add_option("--batch-size", o->batch_size, "requests decoded together at most")
      ->capture_default_str();
  cmd->add_option("--max-length", o->max_length, "decoding length incl. the start token")
      ->capture_default_str();
  cmd->add_option("--max-source-length", o->max_source_length, "input tokens kept (with </s>)")
      ->capture_default_str();
  cmd->callback([o] { run_serve(*o); });
}

}  // namespace compacter::cli

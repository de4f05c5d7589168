// `compacter serve`: several adapters on one base model held once in memory (the library's
// serve::AdapterServer). Requests are JSON Lines on stdin, {"adapter": NAME, "text": "...", "id":
// ANY}, or with the fields of the adapter's task instead of "text" ({"adapter": "rte",
// "sentence1": "...", "sentence2": "..."}, formatted as training formatted them); each gets one
// line on stdout, in order, {"id", "adapter", "output"(, "label")} or {"id", "line", "error"}.
// Requests that are waiting when a batch starts are decoded together. A request may carry
// "parameters" (TGI's names: serve/requests.h); a reply then adds "details" (n-best, tokens and
// their log-probabilities, finish_reason) and "label_probabilities" as the HTTP reply has them,
// and an error line adds "error_type".
// With --http [HOST:]PORT the same server answers HTTP instead (http_serve.h).
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "compacter/core/error.h"
#include "compacter/core/units.h"
#include "compacter/serve/adapter_server.h"
#include "compacter/serve/requests.h"
#include "decoding_options.h"
#include "http_serve.h"
#include "stderr_progress.h"
#include "stdin_lines.h"

namespace compacter::cli {
namespace {

struct ServeCli {
  train::ModelSpec model;
  std::vector<std::string> adapters;  // NAME=DIR or DIR
  serve::ServerOptions server;
  DecodingFlags decoding;
  std::string http;  // [HOST:]PORT: serve HTTP instead of JSON Lines
  std::string api_key;
  std::string api_key_file;
  std::string admin_token;
  std::string admin_token_file;
  std::string adapter_root;
  bool no_continuous = false;
  bool no_mixed = false;
};

// A secret from --FLAG, --FLAG-file (its first line) or the environment's ENV, in that order;
// "" when none is given.
std::string read_secret(const std::string& value, const std::string& file, const char* flag,
                        const char* env) {
  check_usage(value.empty() || file.empty(), "give --", flag, " or --", flag, "-file, not both");
  std::string secret = value;
  if (!file.empty()) {
    std::ifstream in(file);
    check(in.good(), "--", flag, "-file ", file, ": cannot be read");
    std::getline(in, secret);
    while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back())))
      secret.pop_back();
    check(!secret.empty(), "--", flag, "-file ", file, ": the first line (the secret) is empty");
  }
  if (secret.empty())
    if (const char* from_env = std::getenv(env)) secret = from_env;
  return secret;
}

void run_serve(const ServeCli& o) {
  StderrProgress progress;
  HttpOptions http;
  if (!o.http.empty()) {
    parse_listen_address(o.http, http);
    http.api_key = read_secret(o.api_key, o.api_key_file, "api-key", "COMPACTER_API_KEY");
    http.admin_token =
        read_secret(o.admin_token, o.admin_token_file, "admin-token", "COMPACTER_ADMIN_TOKEN");
    check_usage(http.admin_token.empty() || !o.adapter_root.empty(),
                "--admin-token needs --adapter-root (the folder adapters may be loaded from)");
    if (!o.adapter_root.empty()) {
      std::error_code ec;
      const auto root = std::filesystem::canonical(o.adapter_root, ec);
      check(!ec && std::filesystem::is_directory(root), "--adapter-root ", o.adapter_root,
            ": not a folder");
      check_usage(root != "/", "--adapter-root / would allow any folder; name a narrower one");
      http.adapter_root = root.string();
    }
    http.continuous = !o.no_continuous;
    http.model_dir = o.model.dir;
  } else {
    check_usage(o.api_key.empty() && o.api_key_file.empty(), "--api-key is for --http");
    check_usage(o.admin_token.empty() && o.admin_token_file.empty() && o.adapter_root.empty(),
                "--admin-token and --adapter-root are for --http");
  }
  // Every adapter argument is checked before the model loads.
  std::vector<std::pair<std::string, std::string>> adapters;
  for (const std::string& arg : o.adapters) adapters.push_back(serve::adapter_name_and_dir(arg));
  train::BaseModel base = train::load_base_model(o.model, progress);
  serve::ServerOptions options = o.server;
  options.mixed_batches = !o.no_mixed;
  options.generation = with_decoding_flags(o.decoding, base.generation);
  serve::AdapterServer server(std::move(base), options);
  progress.info(
      cat("base model ", o.model.dir, " (tensors: ", human_bytes(server.base_bytes()), ")"));
  for (const auto& [name, dir] : adapters) {
    const serve::AdapterInfo& a = server.add(name, dir);
    for (const std::string& warning : a.warnings) progress.warning(warning);
    std::string inputs;
    if (a.inputs) inputs = cat(", or ", a.task, "'s fields: ", tasks::field_names(*a.inputs));
    progress.info(cat("adapter ", name, " = ", dir, " (", a.method,
                      a.task.empty() ? std::string() : ", task " + a.task, ", tensors of its own: ",
                      human_bytes(a.own_bytes), "; inputs: text", inputs, ")"));
  }
  // Requests may leave "adapter" out when there is one to choose (the base model counts only
  // when alone).
  const std::string only = adapters.empty()       ? std::string(serve::kBaseName)
                           : adapters.size() == 1 ? adapters.front().first
                                                  : "";
  std::string names;
  for (const auto& a : server.list()) names += " " + a.name;
  if (!o.http.empty()) {
    http.default_adapter = only;
    serve_http(server, http, progress);
    return;
  }
  progress.info(cat("reading JSON Lines requests on stdin ({\"adapter\": NAME, \"text\": \"...\", ",
                    "\"id\": ...}; adapters:", names, ")"));

  LineBatches input;
  std::vector<std::string> lines;
  int64_t line_no = 0, answered = 0, failed = 0;
  while (input.next(lines, static_cast<size_t>(o.server.batch_size))) {
    std::vector<serve::Request> requests;
    for (const std::string& text : lines) {
      ++line_no;
      if (text.find_first_not_of(" \t") == std::string::npos) continue;  // blank line
      requests.push_back(
          serve::parse_request_line(text, line_no, only, server.options(), server.generation()));
    }
    const std::vector<serve::Reply> replies = server.answer(requests);
    for (size_t i = 0; i < replies.size(); ++i) {
      const serve::Reply& r = replies[i];
      nlohmann::json reply = {{"id", r.id}};
      if (r.error.empty()) {
        reply["adapter"] = r.adapter;
        reply["output"] = r.output;
        if (!r.label.is_null()) reply["label"] = r.label;
        const nlohmann::json full = serve::generate_reply_json(r);
        for (const char* extra : {"details", "label_probabilities"})
          if (full.contains(extra)) reply[extra] = full[extra];
        ++answered;
      } else {
        reply["line"] = requests[i].line;
        reply["error"] = r.error;
        reply["error_type"] = serve::error_type(r.error_kind);
        ++failed;
      }
      std::cout << reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
    std::cout.flush();
  }
  progress.info(cat("answered ", answered, " request(s), ", failed, " failed"));
  check(failed == 0, failed, " of ", answered + failed,
        " request(s) failed (their lines on stdout carry the error)");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeCli>();
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve several adapters on one base model held once in memory: JSON Lines requests on "
      "stdin ({\"adapter\": NAME, \"text\": \"...\", \"id\": ...}, or the fields of the adapter's "
      "task instead of \"text\"; \"parameters\" with TGI's names), one JSON line per request on "
      "stdout, in order; \"base\" names the model without adapter. --http [HOST:]PORT serves "
      "HTTP instead (POST /generate, /generate_stream; GET /health, /info, /adapters, /metrics)");
  add_model_options(*cmd, o->model, true, /*int8=*/true);
  cmd->add_option("-a,--adapter", o->adapters,
                  "NAME=DIR, or DIR (named by its folder; RUN/best_adapter by RUN); repeatable");
  add_allow_base_mismatch_flag(*cmd, o->server.allow_base_mismatch);
  cmd->add_option("--batch-size", o->server.batch_size, "requests decoded together at most")
      ->capture_default_str();
  cmd->add_option("--max-new-tokens", o->server.max_new_tokens,
                  "tokens generated at most (default: the model's generation_config.json, else "
                  "20 as transformers 5's generate)");
  add_decoding_flags(*cmd, o->decoding);
  cmd->add_option("--max-source-length", o->server.max_source_length,
                  "input tokens kept (with </s>)")
      ->capture_default_str();
  cmd->add_option("--http", o->http,
                  "[HOST:]PORT: serve HTTP there instead of JSON Lines on stdin (HOST: "
                  "127.0.0.1 unless given; port 0: a free one, printed once listening)");
  cmd->add_option("--api-key", o->api_key,
                  "with --http: every endpoint requires \"Authorization: Bearer KEY\" (default: "
                  "the environment's COMPACTER_API_KEY; none: no key)");
  cmd->add_option("--api-key-file", o->api_key_file,
                  "with --http: the API key as the first line of this file");
  cmd->add_option("--admin-token", o->admin_token,
                  "with --http: turns on POST /adapters and DELETE /adapters/NAME, which require "
                  "\"Authorization: Bearer TOKEN\" (default: the environment's "
                  "COMPACTER_ADMIN_TOKEN; none: off)");
  cmd->add_option("--admin-token-file", o->admin_token_file,
                  "with --http: the admin token as the first line of this file");
  cmd->add_option("--adapter-root", o->adapter_root,
                  "with --admin-token: POST /adapters loads only folders under this one (no "
                  "'..', no symbolic links leading out)");
  cmd->add_flag("--no-mixed-batches", o->no_mixed,
                "decode each adapter's requests in batches of their own (default: adapters whose "
                "method allows it share batches)");
  cmd->add_flag("--no-continuous-batching", o->no_continuous,
                "with --http: answer what waits at each batch boundary in one go instead of "
                "decoding step by step with requests joining and leaving");
  o->server.limits.for_each([&](const char* name, int64_t& field, const char* help) {
    cmd->add_option(flag_name(name), field, help)
        ->capture_default_str()
        ->check(CLI::PositiveNumber)
        ->group("Limits (a request above one is refused, naming it)");
  });
  cmd->callback([o] { run_serve(*o); });
}

}  // namespace compacter::cli

// `compacter predict`: generates from text lines (--text or stdin) with a base model and an
// adapter, through the library's serve::AdapterServer with one adapter.
#include <iostream>

#include "commands.h"
#include "common.h"
#include "compacter/core/error.h"
#include "compacter/serve/adapter_server.h"
#include "stderr_progress.h"

namespace compacter::cli {

namespace {

struct PredictCli {
  train::ModelSpec model;
  std::string adapter;
  std::vector<std::string> texts;
  serve::ServerOptions server;
};

// One output line per input line; an empty input gets an empty output line and an error on
// stderr (the exit status is then 1).
void run_predict(const PredictCli& o) {
  StderrProgress progress;
  serve::AdapterServer server(train::load_base_model(o.model, progress), o.server);
  const std::string name = o.adapter.empty() ? serve::kBaseName : "adapter";
  if (!o.adapter.empty()) server.add(name, o.adapter);
  std::vector<serve::Request> requests;
  int64_t line = 0;
  for (const std::string& text : input_lines(o.texts)) {
    serve::Request r;
    r.line = ++line;
    r.adapter = name;
    r.text = text;
    if (text.find_first_not_of(" \t\r\n") == std::string::npos)
      r.error = cat(o.texts.empty() ? "line " : "--text ", line,
                    ": the input is empty (nothing to predict)");
    requests.push_back(std::move(r));
  }
  int64_t failed = 0;
  for (const serve::Reply& reply : server.answer(requests)) {
    std::cout << reply.output << "\n";
    if (reply.error.empty()) continue;
    ++failed;
    std::cerr << "compacter: error: " << reply.error << "\n";
  }
  std::cout.flush();
  check(failed == 0, failed, " of ", requests.size(),
        " input(s) got no prediction (their output lines are empty)");
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto p = std::make_shared<PredictCli>();
  CLI::App* pr = app.add_subcommand(
      "predict", "Generate from text lines (--text or stdin) with a base model and an adapter");
  add_model_options(*pr, p->model);
  pr->add_option("--adapter", p->adapter, "adapter directory (none: the base model)");
  add_text_option(*pr, p->texts,
                  "one input text (repeat the flag for several; quote the text); default: the "
                  "lines of stdin");
  pr->add_option("--batch-size", p->server.batch_size, "lines per generation batch")
      ->capture_default_str();
  pr->add_option("--max-new-tokens", p->server.max_new_tokens, "tokens generated at most")
      ->capture_default_str();
  pr->add_option("--max-source-length", p->server.max_source_length,
                 "input tokens kept (with </s>)")
      ->capture_default_str();
  pr->callback([p] { run_predict(*p); });
}

}  // namespace compacter::cli

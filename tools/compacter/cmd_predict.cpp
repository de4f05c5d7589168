// `compacter predict`: generates from input lines (--text or stdin) with a base model and an
// adapter, through the library's serve::AdapterServer with one adapter. An input is text as the
// model sees it, or (a JSON object) the fields of the adapter's task, formatted as training
// formatted them; the output line is then the label the generated text stands for ("entailment"
// for RTE's "0"; the number for STS-B), else the generated text.
#include <iostream>
#include <limits>

#include "commands.h"
#include "common.h"
#include "compacter/core/error.h"
#include "compacter/serve/adapter_server.h"
#include "decoding_options.h"
#include "stderr_progress.h"

namespace compacter::cli {

namespace {

struct PredictCli {
  train::ModelSpec model;
  std::string adapter;
  std::vector<std::string> texts;
  std::string input = "auto";
  bool output_json = false;  // --json (as params, methods and bench), or --output-json
  serve::ServerOptions server;
  DecodingFlags decoding;
  std::string labels;  // comma list
};

bool looks_like_fields(const std::string& line, const std::string& input) {
  if (input == "text") return false;
  if (input == "fields") return true;
  const size_t first = line.find_first_not_of(" \t");
  return first != std::string::npos && line[first] == '{';
}

// One output line per input line; an empty input gets an empty output line and an error on
// stderr (the exit status is then 1).
void run_predict(const PredictCli& o) {
  StderrProgress progress;
  train::BaseModel base = train::load_base_model(o.model, progress);
  serve::ServerOptions options = o.server;
  options.generation = with_decoding_flags(o.decoding, base.generation);
  if (!o.labels.empty()) {
    std::string item;
    for (size_t i = 0; i <= o.labels.size(); ++i) {
      if (i == o.labels.size() || o.labels[i] == ',') {
        check_usage(!item.empty(), "--labels: an empty label in \"", o.labels, "\"");
        options.labels.push_back(item);
        item.clear();
      } else {
        item += o.labels[i];
      }
    }
  }
  // A local command: long inputs are cut to --max-source-length as always, not refused (the
  // server's limit on input tokens is for requests from others).
  options.limits.max_input_tokens = std::numeric_limits<int64_t>::max();
  options.sample_alone = false;  // one run: sampled inputs share the seed's stream, batched
  serve::AdapterServer server(std::move(base), options);
  const bool token_logprobs = server.generation().output_scores;
  const std::string name = o.adapter.empty() ? serve::kBaseName : "adapter";
  if (!o.adapter.empty())
    for (const std::string& warning : server.add(name, o.adapter).warnings)
      progress.warning(warning);
  std::vector<serve::Request> requests;
  int64_t line = 0;
  for (const std::string& text : input_lines(o.texts)) {
    serve::Request r;
    r.line = ++line;
    r.adapter = name;
    const std::string where = cat(o.texts.empty() ? "line " : "--text ", line);
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
      r.error = cat(where, ": the input is empty (nothing to predict)");
    } else if (looks_like_fields(text, o.input)) {
      try {
        r.fields = nlohmann::json::parse(text);
        if (!r.fields.is_object())
          r.error = cat(where, ": expected the task's fields as a JSON object, got ",
                        r.fields.type_name());
      } catch (const nlohmann::json::exception&) {
        r.error =
            cat(where, ": not a JSON object of fields (give --input text to send it as text)");
      }
    } else {
      r.text = text;
    }
    requests.push_back(std::move(r));
  }
  int64_t failed = 0;
  for (const serve::Reply& reply : server.answer(requests, progress)) {
    if (o.output_json) {
      nlohmann::json j = {{"output", reply.output}};
      if (!reply.label.is_null()) j["label"] = reply.label;
      nlohmann::json seqs = nlohmann::json::array();
      for (const serve::ReplySequence& rs : reply.sequences) {
        nlohmann::json sj = sequence_json(rs.text, rs.sequence, token_logprobs);
        if (!rs.label.is_null()) sj["label"] = rs.label;
        seqs.push_back(std::move(sj));
      }
      j["sequences"] = std::move(seqs);
      if (!reply.label_probabilities.is_null())
        j["label_probabilities"] = reply.label_probabilities;
      if (!reply.error.empty()) j = {{"error", reply.error}};
      std::cout << j.dump() << "\n";
    } else if (reply.label.is_string()) {
      std::cout << reply.label.get<std::string>() << "\n";
    } else if (!reply.label.is_null()) {
      std::cout << reply.label.dump() << "\n";
    } else {
      std::cout << reply.output << "\n";
    }
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
      "predict",
      "Generate from input lines (--text or stdin; text, or the task's fields as JSON) with a base "
      "model and an adapter");
  add_model_options(*pr, p->model, true, /*int8=*/true);
  pr->add_option("--adapter", p->adapter, "adapter directory (none: the base model)");
  add_allow_base_mismatch_flag(*pr, p->server.allow_base_mismatch);
  pr->add_option("--input", p->input,
                 "how inputs are read: auto (a line that starts with { is the task's fields as "
                 "JSON, e.g. {\"sentence1\": ..., \"sentence2\": ...}; other lines are text), "
                 "text, fields")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "text", "fields"}));
  add_text_option(*pr, p->texts,
                  "one input text (repeat the flag for several; quote the text); default: the "
                  "lines of stdin");
  pr->add_option("--batch-size", p->server.batch_size, "lines per generation batch")
      ->capture_default_str();
  pr->add_option("--max-new-tokens", p->server.max_new_tokens,
                 "tokens generated at most (default: the model's generation_config.json, else "
                 "20 as transformers 5's generate)");
  pr->add_flag("--json,--output-json", p->output_json,
               "print one JSON line per input: {\"output\", \"label\", \"sequences\": "
               "[{\"text\", \"label\", \"score\", \"logprob_sum\", \"tokens\", "
               "\"finished\"(, \"token_logprobs\" with --output-scores)}]} (or {\"error\"})");
  pr->add_option("--labels", p->labels,
                 "constrained decoding: answer with the most probable of these comma-separated "
                 "label texts (each scored teacher-forced); --json adds "
                 "\"label_probabilities\"");
  add_decoding_flags(*pr, p->decoding);
  pr->add_option("--max-source-length", p->server.max_source_length,
                 "input tokens kept (with </s>)")
      ->capture_default_str();
  pr->callback([p] { run_predict(*p); });
}

}  // namespace compacter::cli

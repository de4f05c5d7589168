// Several adapters served on one base model held once in memory (no I/O here: the program's
// `serve` reads requests and writes replies). Each adapter gets a model that shares the base's
// tensors (nn::share_weights) and owns only the adapter's own: its new modules, and the base
// tensors its method retrains (layer norms, or every tensor for `full`). A batch of requests is
// answered grouped by adapter, each group decoded in batches (greedy unless the options' or the
// model's decoding settings say otherwise: train/decoding); replies keep the requests' order,
// and a bad request gets an error reply without stopping the others.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compacter/core/options.h"
#include "compacter/tasks/inputs.h"
#include "compacter/train/base_model.h"
#include "compacter/train/decoding/decode.h"
#include "compacter/train/evaluate.h"

namespace compacter::serve {

// The name of the base model without adapter.
constexpr const char* kBaseName = "base";

// What a request may ask for at most (refused, naming the limit, when it asks for more), declared
// once: X(type, name, default, help). The program makes them flags and `GET /info` lists them.
#define COMPACTER_SERVER_LIMITS(X)                                                               \
  X(int64_t, max_request_new_tokens, 512, "a request's max_new_tokens at most")                  \
  X(int64_t, max_request_beams, 8, "a request's num_beams at most")                              \
  X(int64_t, max_request_sequences, 8, "a request's num_return_sequences at most")               \
  X(int64_t, max_request_labels, 64, "labels of a request's constrained decoding at most")       \
  X(int64_t, max_input_tokens, 2048,                                                             \
    "input tokens (with </s>, before --max-source-length cuts them) at most")                    \
  X(int64_t, max_body_bytes, 1048576, "bytes of a request (an HTTP body, a JSON line) at most")  \
  X(int64_t, max_inputs_per_request, 64, "inputs of one HTTP request (a JSON list) at most")     \
  X(int64_t, max_queue, 256, "HTTP: inputs waiting to be decoded at most (more: 503)")           \
  X(int64_t, max_batch_rows, 64, "HTTP: rows decoding together in the continuous batch at most") \
  X(int64_t, max_batch_tokens, 32768,                                                            \
    "HTTP: source plus new tokens of the rows decoding together at most")                        \
  X(int64_t, max_connections, 256,                                                               \
    "HTTP: connections handled at once (handler threads; more wait to be accepted)")

struct ServerLimits {
  COMPACTER_OPTIONS_BODY(COMPACTER_SERVER_LIMITS)
};

struct ServerOptions {
  int64_t batch_size = 100;  // sources decoded together at most
  // Generated tokens at most; -1: the decoding settings' (max_new_tokens, else max_length - 1,
  // else 20 as transformers 5.x's generate).
  int64_t max_new_tokens = -1;
  int64_t max_source_length = 512;   // input tokens kept (with </s>)
  bool allow_base_mismatch = false;  // serve adapters trained on another base (with a warning)
  // How to decode; none: the base model's (BaseModel::generation: transformers' defaults and
  // the model folder's generation_config.json).
  std::optional<decoding::GenerationConfig> generation;
  // Non-empty: constrained decoding to these label texts (decoding/label_scores.h) instead of
  // generation: the output is the most probable label, with the distribution over all.
  std::vector<std::string> labels;
  ServerLimits limits;
  // Sampled requests are decoded one at a time, so that a request's seed alone decides its draws
  // (rows of one batch share the random stream); false: batched like the others (`predict`,
  // whose inputs are one run).
  bool sample_alone = true;
  // Requests for different adapters decode in one batch (serve/mixed_batch.h) when their
  // methods allow it; false: one batch per adapter.
  bool mixed_batches = true;
};

// Why a request failed, as HTTP tells it (the program maps each to a status code).
enum class ErrorKind {
  none,
  bad_request,  // 400: malformed JSON, an unknown field, a wrong type, bad task fields
  not_found,    // 404: an unknown adapter
  too_large,    // 413: the request is larger than max_body_bytes
  invalid,      // 422: a value out of range, or a server limit exceeded (named)
  internal,     // 500: decoding failed
  forbidden,    // 403: not allowed (a path outside --adapter-root)
  conflict,     // 409: a name taken
  unavailable,  // 503: the server is stopping
  timeout,      // 504: the request's deadline passed before it was answered
};

// "bad_request", "not_found", "payload_too_large", "validation", "generation", "forbidden",
// "conflict", "overloaded", "timeout".
const char* error_type(ErrorKind kind);

// The errors of requests answered without their output, in the same words on every path
// (the continuous batch, the scheduler, AdapterServer::answer).
inline constexpr const char* kClientWentAway = "cancelled: the client went away";
inline constexpr const char* kDeadlinePassed =
    "the request's deadline passed before it was answered";

struct Request {
  int64_t line = 0;       // > 0: the request's line, named in its error messages
  nlohmann::json id;      // echoed in the reply
  std::string adapter;    // a served name ("base" for the model alone)
  std::string text;       // the input as the model sees it, or
  nlohmann::json fields;  // an object: the adapter's task's own fields, formatted as in training
  std::string error;      // non-empty: the request was malformed; answered with this error
  ErrorKind error_kind = ErrorKind::bad_request;  // with `error`
  // Per-request settings ("parameters"); none: the server's. Requests are decoded together only
  // with the same adapter and equal settings; a sampled one alone (ServerOptions::sample_alone).
  std::optional<decoding::GenerationConfig> generation;
  std::optional<std::vector<std::string>> labels;
  bool details = false;  // the reply's sequences carry their tokens' texts
};

// One generated sequence: its text, the label it stands for and its scores.
struct ReplySequence {
  std::string text;
  nlohmann::json label;  // null: no label
  decoding::Sequence sequence;
  // With Request::details: each token's text, what it adds to the text decoded so far (special
  // tokens add ""), and whether it is a special token.
  std::vector<std::string> token_texts;
  std::vector<bool> token_special;
};

struct Reply {
  nlohmann::json id;
  std::string adapter;
  std::string output;    // the generated text (the first sequence's)
  nlohmann::json label;  // what the output means for the adapter's task (null: no label)
  std::string error;     // non-empty instead of an output
  ErrorKind error_kind = ErrorKind::none;
  std::vector<ReplySequence> sequences;  // num_return_sequences of them, best first for beams
  // With labels: {"label text": probability, ...} (the sequences stay empty).
  nlohmann::json label_probabilities;
  bool details = false;  // as the request asked
  uint64_t seed = 0;     // the sampling seed used
  bool sampled = false;  // do_sample was on
};

struct AdapterInfo {
  std::string name;
  std::string dir;
  std::string method;
  int64_t own_bytes = 0;         // tensor bytes not shared with the base (int8 copies too)
  int64_t own_parameters = 0;    // their elements
  std::string base_fingerprint;  // weights of the base it was trained on (the base: its own; "":
                                 // not recorded)
  std::string task;              // the task it was trained on ("" when not recorded)
  std::optional<tasks::InputFormat> inputs;  // how its task's fields become text, if recorded
  std::vector<std::string> warnings;         // from loading it (an unchecked or other base)
  // Why it is kept out of mixed-adapter batches ("": it takes part; serve/mixed_batch.h).
  std::string mixed_refusal;
  double load_seconds = 0.0;  // the time loading it took
};

// An adapter read from its folder, not yet served (AdapterServer::load).
struct LoadedAdapter {
  nn::T5Model model{nullptr};
  AdapterInfo info;
};

class MixedBatchModel;

class AdapterServer {
 public:
  AdapterServer(train::BaseModel base, ServerOptions options);
  ~AdapterServer();

  // Loads the adapter in `dir` under `name` (UsageError for an empty, duplicate or reserved
  // name; Error for a bad adapter, or one trained on another base model unless allowed).
  const AdapterInfo& add(const std::string& name, const std::string& dir);
  // The same in two parts: load() reads the adapter onto a model sharing the base's tensors
  // (it changes nothing of the server's, so another thread may run it while the server
  // decodes); add() then serves it (UsageError for a bad or taken name).
  LoadedAdapter load(const std::string& name, const std::string& dir) const;
  const AdapterInfo& add(LoadedAdapter adapter);
  void check_name(const std::string& name) const;  // UsageError: empty, reserved or taken
  void remove(const std::string& name);
  std::vector<AdapterInfo> list() const;  // by name, the base first
  bool has(const std::string& name) const;
  int64_t base_bytes() const;  // the base model's tensor bytes, its int8 weights included

  // The decoding settings requests are answered with (unless a request sets its own).
  const decoding::GenerationConfig& generation() const { return generation_; }
  const ServerOptions& options() const { return options_; }
  const train::BaseModel& base() const { return base_; }

  // Answers every request (requests with an error, or for an unknown adapter, get an error
  // reply); replies are in the requests' order. Requests are grouped by adapter and settings.
  // Long batches report "generating: done/total inputs" to `progress` every 2 s.
  // dropped(i): whether request i's client went away; such a request is not started, and a group
  // whose every request is dropped stops at the next decoding step (or label batch). Their
  // replies carry the error "cancelled: the client went away".
  std::vector<Reply> answer(const std::vector<Request>& requests,
                            ProgressSink& progress = no_progress(),
                            const std::function<bool(size_t)>& dropped = {});

  // The parts of answer() that a step-by-step decoder (serve/continuous.h) shares:
  // The settings a request is decoded with.
  const decoding::GenerationConfig& settings_of(const Request& r) const;
  // Starts `reply` for `r` (id, adapter, details, seed) and returns its source ids: the text or
  // the task's fields formatted, tokenized and cut; none, with reply.error set, when `r` has an
  // error, names an unknown adapter, has bad fields or is above max_input_tokens.
  std::optional<std::vector<int64_t>> prepare(const Request& r, Reply& reply) const;
  // Fills `reply`'s sequences, output and label from what was generated for it.
  void finish(Reply& reply, std::vector<train::GeneratedText> generated) const;
  // Whether `r` may decode in a mixed-adapter batch (its adapter's method allows it, no labels).
  bool mixable(const Request& r) const;
  // The served model of an adapter (a model sharing the base's tensors), its description.
  nn::T5Model model_of(const std::string& name) const;
  const AdapterInfo& info_of(const std::string& name) const;
  // The model that decodes mixed-adapter batches (made on first use).
  MixedBatchModel& mixed();

 private:
  struct Served;
  // Decodes (or scores with `labels`) one group of answer()'s requests into `replies`.
  void answer_group(const std::vector<Request>& requests, const std::vector<size_t>& indices,
                    bool mixed_group, const decoding::GenerationConfig& generation,
                    const std::vector<std::string>& labels,
                    const std::vector<std::vector<int64_t>>& sources,
                    const train::BatchDone& on_batch, const train::StepDone& on_step,
                    std::vector<Reply>& replies);
  train::BaseModel base_;
  ServerOptions options_;
  decoding::GenerationConfig generation_;
  std::map<std::string, std::unique_ptr<Served>> served_;
  std::unique_ptr<MixedBatchModel> mixed_;  // made on first use
};

// NAME=DIR, or DIR named by its last component (RUN/best_adapter by RUN's name).
std::pair<std::string, std::string> adapter_name_and_dir(const std::string& arg);

// One JSON Lines request, {"adapter": NAME, "text": "...", "id": ANY, "parameters": {...}}, or
// instead of "text" the fields of the adapter's task ({"adapter": "rte", "sentence1": "...",
// "sentence2": "..."}; "adapter" may be left out when `default_adapter` is not empty, or given in
// "parameters"). "parameters" as parse_parameters (requests.h) reads them, against `options`'
// limits and `defaults` (the server's settings). A malformed line gives a Request whose `error`
// says why, naming the line.
Request parse_request_line(const std::string& text, int64_t line,
                           const std::string& default_adapter, const ServerOptions& options = {},
                           const decoding::GenerationConfig& defaults = {});

}  // namespace compacter::serve

// Several adapters served on one base model held once in memory (no I/O here: the program's
// `serve` reads requests and writes replies). Each adapter gets a model that shares the base's
// tensors (nn::share_weights) and owns only the adapter's own: its new modules, and the base
// tensors its method retrains (layer norms, or every tensor for `full`). A batch of requests is
// answered grouped by adapter, each group decoded greedily in batches; replies keep the requests'
// order, and a bad request gets an error reply without stopping the others.
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compacter/tasks/inputs.h"
#include "compacter/train/base_model.h"

namespace compacter::serve {

// The name of the base model without adapter.
constexpr const char* kBaseName = "base";

struct ServerOptions {
  int64_t batch_size = 100;          // sources decoded together at most
  int64_t max_new_tokens = 19;       // generated tokens at most (the paper's max_length 20)
  int64_t max_source_length = 512;   // input tokens kept (with </s>)
  bool allow_base_mismatch = false;  // serve adapters trained on another base (with a warning)
};

struct Request {
  int64_t line = 0;       // > 0: the request's line, named in its error messages
  nlohmann::json id;      // echoed in the reply
  std::string adapter;    // a served name ("base" for the model alone)
  std::string text;       // the input as the model sees it, or
  nlohmann::json fields;  // an object: the adapter's task's own fields, formatted as in training
  std::string error;      // non-empty: the request was malformed; answered with this error
};

struct Reply {
  nlohmann::json id;
  std::string adapter;
  std::string output;    // the generated text
  nlohmann::json label;  // what the output means for the adapter's task (null: no label)
  std::string error;     // non-empty instead of an output
};

struct AdapterInfo {
  std::string name;
  std::string dir;
  std::string method;
  int64_t own_bytes = 0;                     // tensor bytes not shared with the base
  std::string task;                          // the task it was trained on ("" when not recorded)
  std::optional<tasks::InputFormat> inputs;  // how its task's fields become text, if recorded
  std::vector<std::string> warnings;         // from loading it (an unchecked or other base)
};

class AdapterServer {
 public:
  AdapterServer(train::BaseModel base, ServerOptions options);
  ~AdapterServer();

  // Loads the adapter in `dir` under `name` (UsageError for an empty, duplicate or reserved
  // name; Error for a bad adapter, or one trained on another base model unless allowed).
  const AdapterInfo& add(const std::string& name, const std::string& dir);
  void remove(const std::string& name);
  std::vector<AdapterInfo> list() const;  // by name, the base first
  bool has(const std::string& name) const;
  int64_t base_bytes() const;  // the base model's tensor bytes

  // Answers every request (requests with an error, or for an unknown adapter, get an error
  // reply); replies are in the requests' order.
  // Long batches report "generating: done/total inputs" to `progress` every 2 s.
  std::vector<Reply> answer(const std::vector<Request>& requests,
                            ProgressSink& progress = no_progress());

 private:
  struct Served;
  train::BaseModel base_;
  ServerOptions options_;
  std::map<std::string, std::unique_ptr<Served>> served_;
};

// NAME=DIR, or DIR named by its last component (RUN/best_adapter by RUN's name).
std::pair<std::string, std::string> adapter_name_and_dir(const std::string& arg);

// One JSON Lines request, {"adapter": NAME, "text": "...", "id": ANY}, or instead of "text" the
// fields of the adapter's task ({"adapter": "rte", "sentence1": "...", "sentence2": "..."};
// "adapter" may be left out when `default_adapter` is not empty). A malformed line gives a
// Request whose `error` says why, naming the line.
Request parse_request_line(const std::string& text, int64_t line,
                           const std::string& default_adapter);

}  // namespace compacter::serve

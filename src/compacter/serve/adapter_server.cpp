// Adapters on one shared base model: see adapter_server.h.
#include "compacter/serve/adapter_server.h"

#include <torch/torch.h>

#include <set>

#include "compacter/core/error.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/train/evaluate.h"

namespace compacter::serve {

namespace {

// The distinct storages of `model`'s parameters and buffers, with their sizes in bytes.
std::map<const void*, int64_t> storages_of(const torch::nn::Module& model) {
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

struct CollectWarnings : ProgressSink {
  std::vector<std::string> lines;
  void warning(const std::string& line) override { lines.push_back(line); }
};

}  // namespace

struct AdapterServer::Served {
  nn::T5Model model{nullptr};
  AdapterInfo info;
};

AdapterServer::AdapterServer(train::BaseModel base, ServerOptions options)
    : base_(std::move(base)), options_(options) {
  check_usage(options_.batch_size >= 1, "--batch-size must be at least 1, got ",
              options_.batch_size);
  check_usage(options_.max_new_tokens == -1 || options_.max_new_tokens >= 1,
              "--max-new-tokens must be at least 1, got ", options_.max_new_tokens);
  generation_ = options_.generation.value_or(base_.generation);
  if (options_.max_new_tokens >= 1) generation_.max_new_tokens = options_.max_new_tokens;
  generation_.validate("decoding", true);
  check_usage(generation_.new_token_limit() >= 1, "max_new_tokens must be at least 1, got ",
              generation_.new_token_limit());
  check_usage(options_.max_source_length >= 1, "--max-source-length must be at least 1, got ",
              options_.max_source_length);
  auto served = std::make_unique<Served>();
  served->model = base_.model;
  served->info.name = kBaseName;
  served_.emplace(kBaseName, std::move(served));
}

AdapterServer::~AdapterServer() = default;

int64_t AdapterServer::base_bytes() const {
  return bytes_not_in(storages_of(*base_.model), {});
}

const AdapterInfo& AdapterServer::add(const std::string& name, const std::string& dir) {
  check_usage(!name.empty(), "an adapter needs a name (NAME=DIR)");
  check_usage(name != kBaseName, "the name \"", name, "\" is reserved for the base model");
  check_usage(!served_.count(name), "the name \"", name, "\" is given twice");
  auto served = std::make_unique<Served>();
  served->model = nn::share_weights(*base_.model);
  CollectWarnings warnings;
  served->info.method =
      peft::load_adapter(*served->model, dir,
                         train::adapter_checks(base_, options_.allow_base_mismatch, warnings))
          .method;
  served->info.warnings = warnings.lines;
  const nlohmann::json config = peft::read_adapter_config(dir);
  if (config.contains("task") && config["task"].is_string())
    served->info.task = config["task"].get<std::string>();
  if (config.contains("inputs"))
    served->info.inputs = tasks::input_format_from_json(
        config["inputs"], cat(dir, "/", peft::kAdapterConfigFile, ": inputs"));
  if (served->info.inputs && served->info.inputs->task == "user")
    served->info.task = served->info.inputs->user.name;  // the name the user gave their task
  served->model->eval();
  served->info.name = name;
  served->info.dir = dir;
  served->info.own_bytes = bytes_not_in(storages_of(*served->model), storages_of(*base_.model));
  return served_.emplace(name, std::move(served)).first->second->info;
}

void AdapterServer::remove(const std::string& name) {
  check_usage(name != kBaseName, "the base model cannot be removed");
  check_usage(served_.erase(name) == 1, "no adapter named \"", name, "\"");
}

bool AdapterServer::has(const std::string& name) const {
  return served_.count(name) > 0;
}

std::vector<AdapterInfo> AdapterServer::list() const {
  std::vector<AdapterInfo> out{served_.at(kBaseName)->info};
  for (const auto& [name, s] : served_)
    if (name != kBaseName) out.push_back(s->info);
  return out;
}

std::vector<Reply> AdapterServer::answer(const std::vector<Request>& requests,
                                         ProgressSink& progress) {
  torch::NoGradGuard no_grad;
  std::vector<Reply> replies(requests.size());
  std::map<std::string, std::vector<size_t>> by_adapter;
  for (size_t i = 0; i < requests.size(); ++i) {
    const Request& r = requests[i];
    replies[i].id = r.id;
    replies[i].adapter = r.adapter;
    replies[i].error = r.error;
    if (!r.error.empty()) continue;
    if (!served_.count(r.adapter)) {
      std::string known;
      for (const auto& [name, s] : served_) known += (known.empty() ? "" : ", ") + name;
      replies[i].error = cat(r.line > 0 ? cat("line ", r.line, ": ") : std::string(),
                             "unknown adapter \"", r.adapter, "\" (serving: ", known, ")");
      continue;
    }
    by_adapter[r.adapter].push_back(i);
  }
  size_t total = 0, done_before = 0;
  for (const auto& [name, indices] : by_adapter) total += indices.size();
  PeriodicStatus status(progress, "generating", "inputs");
  for (auto& [name, indices] : by_adapter) {
    const AdapterInfo& info = served_.at(name)->info;
    std::vector<std::vector<int64_t>> sources;
    std::vector<size_t> answered;
    for (size_t i : indices) {
      const Request& r = requests[i];
      std::string text = r.text;
      if (r.fields.is_object()) {
        try {
          check(info.inputs.has_value(), "adapter \"", name, "\" ",
                name == kBaseName ? std::string("is the base model, which has no task")
                                  : std::string("records no task format (saved before adapters "
                                                "did)"),
                ": send \"text\" instead of fields");
          text = tasks::format_fields(
              *info.inputs, r.fields,
              tasks::Where{r.line > 0 ? cat("line ", r.line) : std::string("request"), 0});
        } catch (const Error& e) {
          replies[i].error = info.inputs ? cat(e.what(), " (", info.task, " takes the fields ",
                                               tasks::field_names(*info.inputs), ")")
                                         : std::string(e.what());
          continue;
        }
      }
      // Fields are cut as training cut the task's sources (§4.3); text by the server's option.
      const int64_t max_length = r.fields.is_object() ? tasks::max_source_length(*info.inputs)
                                                      : options_.max_source_length;
      sources.push_back(base_.tokenizer.encode(text, max_length));
      answered.push_back(i);
    }
    const auto on_batch = [&](size_t done, size_t) { status(done_before + done, total); };
    if (!options_.labels.empty()) {
      const auto dists = train::classify_sources(*served_.at(name)->model, base_.tokenizer, sources,
                                                 options_.batch_size, options_.labels,
                                                 base_.precision.autocast, on_batch);
      done_before += indices.size();
      for (size_t k = 0; k < answered.size(); ++k) {
        Reply& reply = replies[answered[k]];
        reply.output = options_.labels[static_cast<size_t>(dists[k].best)];
        if (info.inputs) reply.label = tasks::interpret_output(*info.inputs, reply.output);
        reply.label_probabilities = nlohmann::json::object();
        for (size_t i = 0; i < options_.labels.size(); ++i)
          reply.label_probabilities[options_.labels[i]] = dists[k].probabilities[i];
      }
      continue;
    }
    auto generated = train::generate_sequences(*served_.at(name)->model, base_.tokenizer, sources,
                                               options_.batch_size, generation_,
                                               base_.precision.autocast, on_batch);
    done_before += indices.size();
    for (size_t k = 0; k < answered.size(); ++k) {
      Reply& reply = replies[answered[k]];
      for (train::GeneratedText& g : generated[k]) {
        ReplySequence rs;
        if (info.inputs) rs.label = tasks::interpret_output(*info.inputs, g.text);
        rs.text = std::move(g.text);
        rs.sequence = std::move(g.sequence);
        reply.sequences.push_back(std::move(rs));
      }
      if (reply.sequences.empty()) continue;
      reply.output = reply.sequences.front().text;
      reply.label = reply.sequences.front().label;
    }
  }
  return replies;
}

std::pair<std::string, std::string> adapter_name_and_dir(const std::string& arg) {
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
  check_usage(!name.empty() && !dir.empty(), "--adapter ", arg, ": expected NAME=DIR or DIR");
  return {name, dir};
}

Request parse_request_line(const std::string& text, int64_t line,
                           const std::string& default_adapter) {
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
  nlohmann::json fields = nlohmann::json::object();
  for (const auto& item : j.items())
    if (item.key() != "id" && item.key() != "adapter" && item.key() != "text")
      fields[item.key()] = item.value();
  if (j.contains("text")) {
    if (!j["text"].is_string()) {
      r.error = cat("line ", line, ": \"text\" must be a string");
      return r;
    }
    if (!fields.empty()) {
      r.error = cat("line ", line, ": give \"text\" or the task's fields (such as \"",
                    fields.items().begin().key(), "\"), not both");
      return r;
    }
    r.text = j["text"].get<std::string>();
  } else if (fields.empty()) {
    r.error =
        cat("line ", line, ": no input (expected \"text\", or the fields of the adapter's task)");
    return r;
  } else {
    r.fields = std::move(fields);
  }
  if (j.contains("adapter")) {
    if (!j["adapter"].is_string()) {
      r.error = cat("line ", line, ": \"adapter\" must be a string");
      return r;
    }
    r.adapter = j["adapter"].get<std::string>();
  } else if (!default_adapter.empty()) {
    r.adapter = default_adapter;
  } else {
    r.error = cat("line ", line, ": \"adapter\" is required when several adapters are served");
  }
  return r;
}

}  // namespace compacter::serve

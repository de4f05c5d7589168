// Adapters on one shared base model: see adapter_server.h.
#include "compacter/serve/adapter_server.h"

#include <torch/torch.h>

#include <chrono>
#include <set>

#include "compacter/core/error.h"
#include "compacter/nn/int8_linear.h"
#include "compacter/nn/layers.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/serve/mixed_batch.h"
#include "compacter/serve/requests.h"
#include "compacter/train/evaluate.h"
#include "compacter/train/loop.h"

namespace compacter::serve {

namespace {

// The distinct storages of `model`'s parameters and buffers, with their sizes in bytes, and its
// linear and output layers' int8 weights (a shared one counted once, as a shared storage is).
std::map<const void*, int64_t> storages_of(const torch::nn::Module& model) {
  std::map<const void*, int64_t> out;
  auto add = [&](const torch::Tensor& t) {
    if (t.defined()) out[t.storage().data()] = static_cast<int64_t>(t.storage().nbytes());
  };
  for (const auto& t : model.parameters(true)) add(t);
  for (const auto& t : model.buffers(true)) add(t);
  for (const auto& m : model.modules(/*include_self=*/false)) {
    if (const auto* linear = dynamic_cast<const nn::LinearImpl*>(m.get());
        linear && linear->is_int8())
      out[linear->int8().get()] = linear->int8()->bytes();
    if (const auto* head = dynamic_cast<const nn::LMHeadImpl*>(m.get()); head && head->int8())
      out[head->int8().get()] = head->int8()->bytes();
  }
  return out;
}

// Elements of `model`'s parameters and buffers whose storage is not in `shared`.
int64_t elements_not_in(const torch::nn::Module& model,
                        const std::map<const void*, int64_t>& shared) {
  int64_t n = 0;
  std::set<const void*> seen;
  auto add = [&](const torch::Tensor& t) {
    if (!t.defined() || shared.count(t.storage().data())) return;
    if (seen.insert(t.storage().data()).second) n += t.numel();
  };
  for (const auto& t : model.parameters(true)) add(t);
  for (const auto& t : model.buffers(true)) add(t);
  return n;
}

// The text each token adds to the text decoded so far (special tokens add nothing), and which
// are special.
void token_texts(const T5Tokenizer& tokenizer, ReplySequence& s) {
  std::vector<int64_t> prefix;
  std::string before;
  for (int64_t id : s.sequence.tokens) {
    prefix.push_back(id);
    std::string now = tokenizer.decode(prefix, true);
    s.token_texts.push_back(now.compare(0, before.size(), before) == 0 ? now.substr(before.size())
                                                                       : now);
    s.token_special.push_back(tokenizer.is_special(id));
    before = std::move(now);
  }
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
  // int8 (CPU): the base's linear layers are quantised once, their fp32 weights freed and their
  // pages handed back to the system; adapters share them (load()).
  train::quantize_if_int8(base_, *base_.model);
  auto served = std::make_unique<Served>();
  served->model = base_.model;
  served->info.name = kBaseName;
  served->info.base_fingerprint = base_.identity.fingerprint;
  served_.emplace(kBaseName, std::move(served));
}

AdapterServer::~AdapterServer() = default;

int64_t AdapterServer::base_bytes() const {
  return bytes_not_in(storages_of(*base_.model), {});
}

void AdapterServer::check_name(const std::string& name) const {
  check_usage(!name.empty(), "an adapter needs a name (NAME=DIR)");
  check_usage(name != kBaseName, "the name \"", name, "\" is reserved for the base model");
  check_usage(!served_.count(name), "the name \"", name, "\" is given twice");
}

LoadedAdapter AdapterServer::load(const std::string& name, const std::string& dir) const {
  const auto start = std::chrono::steady_clock::now();
  LoadedAdapter out;
  AdapterInfo& info = out.info;
  out.model = nn::share_weights(*base_.model.ptr());
  CollectWarnings warnings;
  info.method =
      peft::load_adapter(*out.model, dir,
                         train::adapter_checks(base_, options_.allow_base_mismatch, warnings))
          .method;
  info.warnings = warnings.lines;
  // What the adapter trained, told by storage before int8 frees the retrained weights (a freed
  // weight has no storage, as the base's freed ones): its parameters, and whether it may mix.
  const auto base_storages = storages_of(*base_.model);
  info.own_parameters = elements_not_in(*out.model, base_storages);
  info.mixed_refusal = mixed_batch_refusal(*base_.model.ptr(), *out.model, info.method);
  // int8: the adapter's model runs the base's quantised layers; the layers its method retrained
  // get their own, their fp32 weights freed (nn/int8_linear.h).
  if (base_.precision.int8 &&
      nn::share_int8(*base_.model.ptr(), *out.model, nn::Fp32Weights::kFree) > 0)
    train::release_free_memory();
  const nlohmann::json config = peft::read_adapter_config(dir);
  if (config.contains("base") && config["base"].is_object() &&
      config["base"].contains("weights_fingerprint") &&
      config["base"]["weights_fingerprint"].is_string())
    info.base_fingerprint = config["base"]["weights_fingerprint"].get<std::string>();
  if (config.contains("task") && config["task"].is_string())
    info.task = config["task"].get<std::string>();
  if (config.contains("inputs"))
    info.inputs = tasks::input_format_from_json(
        config["inputs"], cat(dir, "/", peft::kAdapterConfigFile, ": inputs"));
  if (info.inputs && info.inputs->task == "user")
    info.task = info.inputs->user.name;  // the name the user gave their task
  out.model->eval();
  info.name = name;
  info.dir = dir;
  info.own_bytes = bytes_not_in(storages_of(*out.model), base_storages);
  info.load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

const AdapterInfo& AdapterServer::add(LoadedAdapter adapter) {
  check_name(adapter.info.name);
  auto served = std::make_unique<Served>();
  served->model = std::move(adapter.model);
  served->info = std::move(adapter.info);
  const std::string name = served->info.name;
  return served_.emplace(name, std::move(served)).first->second->info;
}

const AdapterInfo& AdapterServer::add(const std::string& name, const std::string& dir) {
  check_name(name);
  return add(load(name, dir));
}

void AdapterServer::remove(const std::string& name) {
  check_usage(name != kBaseName, "the base model cannot be removed");
  check_usage(served_.count(name) == 1, "no adapter named \"", name, "\"");
  if (mixed_) mixed_->set_variants({base_.model.get()});  // drops its hooks and tables
  served_.erase(name);
}

MixedBatchModel& AdapterServer::mixed() {
  if (!mixed_) mixed_ = std::make_unique<MixedBatchModel>(*base_.model);
  return *mixed_;
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

const decoding::GenerationConfig& AdapterServer::settings_of(const Request& r) const {
  return r.generation ? *r.generation : generation_;
}

nn::T5Model AdapterServer::model_of(const std::string& name) const {
  return served_.at(name)->model;
}

const AdapterInfo& AdapterServer::info_of(const std::string& name) const {
  return served_.at(name)->info;
}

std::optional<std::vector<int64_t>> AdapterServer::prepare(const Request& r, Reply& reply) const {
  reply.id = r.id;
  reply.adapter = r.adapter;
  reply.error = r.error;
  reply.error_kind = r.error.empty() ? ErrorKind::none : r.error_kind;
  reply.details = r.details;
  const decoding::GenerationConfig& g = settings_of(r);
  reply.seed = g.seed;
  reply.sampled = g.do_sample;
  if (!r.error.empty()) return std::nullopt;
  if (!served_.count(r.adapter)) {
    std::string known;
    for (const auto& [name, s] : served_) known += (known.empty() ? "" : ", ") + name;
    reply.error = cat(r.line > 0 ? cat("line ", r.line, ": ") : std::string(), "unknown adapter \"",
                      r.adapter, "\" (serving: ", known, ")");
    reply.error_kind = ErrorKind::not_found;
    return std::nullopt;
  }
  const std::string& name = r.adapter;
  const AdapterInfo& info = served_.at(name)->info;
  const std::string where = r.line > 0 ? cat("line ", r.line) : std::string("request");
  std::string text = r.text;
  if (r.fields.is_object()) {
    try {
      check(info.inputs.has_value(), "adapter \"", name, "\" ",
            name == kBaseName ? std::string("is the base model, which has no task")
                              : std::string("records no task format (saved before adapters did)"),
            ": send \"text\" instead of fields");
      text = tasks::format_fields(*info.inputs, r.fields, tasks::Where{where, 0});
    } catch (const Error& e) {
      reply.error = info.inputs ? cat(e.what(), " (", info.task, " takes the fields ",
                                      tasks::field_names(*info.inputs), ")")
                                : std::string(e.what());
      reply.error_kind = ErrorKind::bad_request;
      return std::nullopt;
    }
  }
  // Fields are cut as training cut the task's sources (§4.3); text by the server's option.
  const int64_t max_length =
      r.fields.is_object() ? tasks::max_source_length(*info.inputs) : options_.max_source_length;
  std::vector<int64_t> ids = base_.tokenizer.encode(text);
  if (static_cast<int64_t>(ids.size()) > options_.limits.max_input_tokens) {
    reply.error = cat(
        where, ": the input has ", ids.size(),
        " tokens, above the server's limit max_input_tokens = ", options_.limits.max_input_tokens);
    reply.error_kind = ErrorKind::invalid;
    return std::nullopt;
  }
  if (static_cast<int64_t>(ids.size()) > max_length) ids = base_.tokenizer.encode(text, max_length);
  return ids;
}

void AdapterServer::finish(Reply& reply, std::vector<train::GeneratedText> generated) const {
  const AdapterInfo& info = served_.at(reply.adapter)->info;
  for (train::GeneratedText& g : generated) {
    ReplySequence rs;
    if (info.inputs) rs.label = tasks::interpret_output(*info.inputs, g.text);
    rs.text = std::move(g.text);
    rs.sequence = std::move(g.sequence);
    if (reply.details) token_texts(base_.tokenizer, rs);
    reply.sequences.push_back(std::move(rs));
  }
  if (reply.sequences.empty()) return;
  reply.output = reply.sequences.front().text;
  reply.label = reply.sequences.front().label;
}

bool AdapterServer::mixable(const Request& r) const {
  return options_.mixed_batches && !r.labels && options_.labels.empty() &&
         served_.count(r.adapter) && served_.at(r.adapter)->info.mixed_refusal.empty();
}

namespace {

// Thrown from a decoding step to stop a group whose clients all went away.
struct GroupDropped {};

}  // namespace

std::vector<Reply> AdapterServer::answer(const std::vector<Request>& requests,
                                         ProgressSink& progress,
                                         const std::function<bool(size_t)>& dropped) {
  torch::NoGradGuard no_grad;
  std::vector<Reply> replies(requests.size());
  std::vector<std::vector<int64_t>> source(requests.size());
  auto cancel = [&](size_t i) {
    replies[i].sequences.clear();
    replies[i].output.clear();
    replies[i].error = kClientWentAway;
    replies[i].error_kind = ErrorKind::internal;
  };
  // Requests decoded together: equal settings and the same adapter, or any adapters that can
  // share a mixed batch (the key holds both).
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t i = 0; i < requests.size(); ++i) {
    const Request& r = requests[i];
    auto ids = prepare(r, replies[i]);
    if (!ids) continue;
    if (dropped && dropped(i)) {
      cancel(i);
      continue;
    }
    source[i] = std::move(*ids);
    const decoding::GenerationConfig& g = settings_of(r);
    const nlohmann::json labels = r.labels ? nlohmann::json(*r.labels) : nlohmann::json();
    // A sampled request is decoded alone: its draws then depend on its seed only, not on what
    // else was waiting (rows of one batch share the random stream).
    const nlohmann::json alone =
        options_.sample_alone && g.do_sample && labels.is_null() ? nlohmann::json(i) : nullptr;
    const nlohmann::json adapter = mixable(r) ? nlohmann::json(nullptr) : nlohmann::json(r.adapter);
    groups[nlohmann::json::array({adapter, options::to_json(g), labels, alone}).dump()].push_back(
        i);
  }
  size_t total = 0, done_before = 0;
  for (const auto& [key, indices] : groups) total += indices.size();
  PeriodicStatus status(progress, "generating", "inputs");
  for (auto& group : groups) {
    const std::string& key = group.first;
    const std::vector<size_t>& indices = group.second;  // a lambda below captures it (C++17)
    const Request& first = requests[indices.front()];
    const bool mixed_group = nlohmann::json::parse(key)[0].is_null();
    const decoding::GenerationConfig& generation = settings_of(first);
    const std::vector<std::string>& labels = first.labels ? *first.labels : options_.labels;
    std::vector<std::vector<int64_t>> sources;
    for (size_t i : indices) sources.push_back(std::move(source[i]));
    const auto stop_if_dropped = [&] {
      if (!dropped) return;
      for (size_t i : indices)
        if (!dropped(i)) return;
      throw GroupDropped{};
    };
    const auto on_batch = [&](size_t done, size_t) {
      status(done_before + done, total);
      stop_if_dropped();
    };
    try {
      answer_group(requests, indices, mixed_group, generation, labels, sources, on_batch,
                   dropped ? train::StepDone(stop_if_dropped) : train::StepDone(), replies);
    } catch (const GroupDropped&) {
      for (size_t i : indices) cancel(i);
    }
    done_before += indices.size();
  }
  return replies;
}

void AdapterServer::answer_group(const std::vector<Request>& requests,
                                 const std::vector<size_t>& indices, bool mixed_group,
                                 const decoding::GenerationConfig& generation,
                                 const std::vector<std::string>& labels,
                                 const std::vector<std::vector<int64_t>>& sources,
                                 const train::BatchDone& on_batch, const train::StepDone& on_step,
                                 std::vector<Reply>& replies) {
  const Request& first = requests[indices.front()];
  if (!labels.empty()) {
    const AdapterInfo& info = served_.at(first.adapter)->info;
    const auto dists =
        train::classify_sources(*served_.at(first.adapter)->model, base_.tokenizer, sources,
                                options_.batch_size, labels, base_.precision.autocast, on_batch);
    for (size_t k = 0; k < indices.size(); ++k) {
      Reply& reply = replies[indices[k]];
      reply.output = labels[static_cast<size_t>(dists[k].best)];
      if (info.inputs) reply.label = tasks::interpret_output(*info.inputs, reply.output);
      reply.label_probabilities = nlohmann::json::object();
      for (size_t i = 0; i < labels.size(); ++i)
        reply.label_probabilities[labels[i]] = dists[k].probabilities[i];
    }
    return;
  }
  std::vector<std::vector<train::GeneratedText>> generated;
  // A group of one adapter decodes on its own model (what every batch did before mixing).
  bool one_adapter = true;
  for (size_t i : indices) one_adapter = one_adapter && requests[i].adapter == first.adapter;
  if (mixed_group && !one_adapter) {
    // The adapters of this group, each a variant of the mixed model; each source's variant.
    std::vector<nn::T5ModelImpl*> variants;
    std::map<std::string, int64_t> variant_of;
    std::vector<int64_t> source_variant;
    for (size_t i : indices) {
      const std::string& name = requests[i].adapter;
      auto [it, fresh] = variant_of.emplace(name, static_cast<int64_t>(variants.size()));
      if (fresh) variants.push_back(served_.at(name)->model.get());
      source_variant.push_back(it->second);
    }
    MixedBatchModel& model = mixed();
    model.set_variants(variants);
    generated = train::generate_sequences(
        model.model(), base_.tokenizer, sources, options_.batch_size, generation,
        base_.precision.autocast, on_batch,
        [&](const std::vector<size_t>& positions) {
          std::vector<int64_t> rows;
          for (size_t p : positions) rows.push_back(source_variant[p]);
          model.set_rows(std::move(rows));
        },
        on_step);
  } else {
    generated = train::generate_sequences(*served_.at(first.adapter)->model, base_.tokenizer,
                                          sources, options_.batch_size, generation,
                                          base_.precision.autocast, on_batch, {}, on_step);
  }
  for (size_t k = 0; k < indices.size(); ++k) finish(replies[indices[k]], std::move(generated[k]));
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

}  // namespace compacter::serve

// Continuous batching: the step loop over a ragged mixed-adapter batch (see continuous.h).
#include "compacter/serve/continuous.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <deque>
#include <map>
#include <optional>

#include "compacter/core/error.h"
#include "compacter/nn/autocast.h"
#include "compacter/nn/cross_entropy.h"
#include "compacter/serve/mixed_batch.h"
#include "compacter/train/decoding/logits_processors.h"

namespace compacter::serve {

// Named (not anonymous): ContinuousBatch::State holds these types.
namespace continuous_detail {

// One input of a job: its settings, processors, random stream and sequences.
struct InputState {
  decoding::GenerationConfig config;  // resolved
  std::optional<decoding::LogitsProcessors> processors;
  at::Generator generator;
  std::vector<decoding::Sequence> sequences;
  std::vector<int64_t> source;
  nn::T5Model model{nullptr};  // the adapter's served model (held: it may be unloaded meanwhile)
  int64_t rows_left = 0;
};

struct JobState {
  BatchJob job;
  std::vector<Reply> replies;
  std::vector<InputState> inputs;
  int64_t inputs_left = 0;
  int64_t rows = 0, tokens = 0;  // what it takes of the batch limits
  bool answered = false;         // done (or failed) was called
  void answer() {
    answered = true;
    job.done(std::move(replies));
  }
  bool cancelled() const { return job.cancelled && job.cancelled->load(); }
  bool expired() const { return std::chrono::steady_clock::now() > job.deadline; }
  // Why its rows leave before they end ("": they do not).
  std::pair<std::string, ErrorKind> dropped() const {
    if (cancelled()) return {kClientWentAway, ErrorKind::internal};
    if (expired()) return {kDeadlinePassed, ErrorKind::timeout};
    return {"", ErrorKind::none};
  }
};

// One decoding row: an input's sample.
struct Row {
  std::shared_ptr<JobState> job;
  size_t input = 0, sample = 0;
  nn::T5Model model{nullptr};  // the adapter's served model (the row's variant)
  decoding::History history;
  std::string streamed;  // the text decoded so far (streamed rows)
  bool ended = false;
  InputState& in() const { return job->inputs[input]; }
};

// Rows' decoding state: encoder states and mask [R, S], caches (self-attention right-aligned
// with a key mask).
struct Ragged {
  torch::Tensor encoder_states, encoder_mask;
  nn::DecoderCache cache;
  int64_t rows() const { return encoder_states.defined() ? encoder_states.size(0) : 0; }
};

torch::Tensor pad_dim(const torch::Tensor& t, int64_t dim, int64_t before, int64_t after) {
  if (before == 0 && after == 0) return t;
  std::vector<int64_t> pad(static_cast<size_t>(2 * (t.dim() - dim)), 0);
  // constant_pad_nd takes (last dim before, after, ..., dim before, after).
  pad[pad.size() - 2] = before;
  pad[pad.size() - 1] = after;
  return torch::constant_pad_nd(t, pad);
}

// `b` appended to `a`: self-attention caches left-padded to the longer length, cross-attention
// caches and encoder states right-padded to the longer source.
Ragged merge(Ragged a, Ragged b) {
  if (a.rows() == 0) return b;
  if (b.rows() == 0) return a;
  auto mask_of = [](const Ragged& r) {
    return r.cache.key_mask.defined()
               ? r.cache.key_mask
               : torch::ones({r.rows(), r.cache.length}, r.encoder_mask.options());
  };
  const int64_t L = std::max(a.cache.length, b.cache.length);
  const int64_t S = std::max(a.encoder_states.size(1), b.encoder_states.size(1));
  Ragged out;
  out.encoder_states = torch::cat({pad_dim(a.encoder_states, 1, 0, S - a.encoder_states.size(1)),
                                   pad_dim(b.encoder_states, 1, 0, S - b.encoder_states.size(1))});
  out.encoder_mask = torch::cat({pad_dim(a.encoder_mask, 1, 0, S - a.encoder_mask.size(1)),
                                 pad_dim(b.encoder_mask, 1, 0, S - b.encoder_mask.size(1))});
  out.cache.length = L;
  const int64_t la = L - a.cache.length, lb = L - b.cache.length;
  out.cache.key_mask = torch::cat({pad_dim(mask_of(a), 1, la, 0), pad_dim(mask_of(b), 1, lb, 0)});
  const size_t layers = a.cache.self_attention.size();
  out.cache.self_attention.resize(layers);
  out.cache.cross_attention.resize(layers);
  for (size_t i = 0; i < layers; ++i) {
    const auto& sa = a.cache.self_attention[i];
    const auto& sb = b.cache.self_attention[i];
    out.cache.self_attention[i].key =
        torch::cat({pad_dim(sa.key, 2, la, 0), pad_dim(sb.key, 2, lb, 0)});
    out.cache.self_attention[i].value =
        torch::cat({pad_dim(sa.value, 2, la, 0), pad_dim(sb.value, 2, lb, 0)});
    const auto& ca = a.cache.cross_attention[i];
    const auto& cb = b.cache.cross_attention[i];
    out.cache.cross_attention[i].key = torch::cat(
        {pad_dim(ca.key, 2, 0, S - ca.key.size(2)), pad_dim(cb.key, 2, 0, S - cb.key.size(2))});
    out.cache.cross_attention[i].value =
        torch::cat({pad_dim(ca.value, 2, 0, S - ca.value.size(2)),
                    pad_dim(cb.value, 2, 0, S - cb.value.size(2))});
  }
  return out;
}

// Keeps rows `index` of `r`, then drops the padding columns every remaining row has in front.
void keep_rows(Ragged& r, const std::vector<int64_t>& keep) {
  if (keep.empty()) {
    r = Ragged();
    return;
  }
  const torch::Tensor i = torch::tensor(keep, torch::kLong).to(r.encoder_states.device());
  r.encoder_states = r.encoder_states.index_select(0, i);
  r.encoder_mask = r.encoder_mask.index_select(0, i);
  for (auto& c : r.cache.self_attention) c.select_rows(i);
  for (auto& c : r.cache.cross_attention) {
    c.key = c.key.index_select(0, i);
    c.value = c.value.index_select(0, i);
  }
  if (!r.cache.key_mask.defined()) return;
  r.cache.key_mask = r.cache.key_mask.index_select(0, i);
  const torch::Tensor used = r.cache.key_mask.sum(0).to(torch::kCPU);
  int64_t lead = 0;
  while (lead < used.size(0) && used[lead].item<int64_t>() == 0) ++lead;
  if (lead == 0) return;
  const int64_t length = r.cache.length - lead;
  r.cache.key_mask = r.cache.key_mask.narrow(1, lead, length);
  for (auto& c : r.cache.self_attention) {
    c.key = c.key.narrow(2, lead, length);
    c.value = c.value.narrow(2, lead, length);
  }
  r.cache.length = length;
}

}  // namespace continuous_detail

using namespace continuous_detail;

struct ContinuousBatch::State {
  AdapterServer& server;
  int64_t max_rows, max_tokens;
  std::deque<std::shared_ptr<JobState>> waiting;
  int64_t waiting_inputs = 0;
  std::vector<Row> rows;  // the running rows, in the order of `ragged`
  Ragged ragged;
  int64_t used_tokens = 0;
  std::vector<nn::T5Model> variants;  // the mixed model's variants (kept alive while listed)
  std::vector<std::shared_ptr<JobState>> joining;  // jobs being prefilled
  int64_t joining_inputs = 0;

  State(AdapterServer& s, int64_t r, int64_t t) : server(s), max_rows(r), max_tokens(t) {}

  // The variant index of each row, adding the rows' models to the list (the list is pruned of
  // models no row uses when it has grown).
  std::vector<int64_t> variant_of(const std::vector<Row>& a, const std::vector<Row>& b) {
    auto index = [&](const nn::T5Model& m) {
      for (size_t v = 0; v < variants.size(); ++v)
        if (variants[v].get() == m.get()) return static_cast<int64_t>(v);
      variants.push_back(m);
      return static_cast<int64_t>(variants.size() - 1);
    };
    if (variants.size() > 2 * (a.size() + b.size()) + 8) variants.clear();
    std::vector<int64_t> out;
    for (const auto* list : {&a, &b})
      for (const Row& r : *list) out.push_back(index(r.model));
    std::vector<nn::T5ModelImpl*> raw;
    for (auto& m : variants) raw.push_back(m.get());
    server.mixed().set_variants(raw);
    return out;
  }

  // Logits [R, V] (float32) of the next token of `r`'s rows (their variants, their last
  // tokens): one decoder step.
  torch::Tensor decode_step(Ragged& r, const std::vector<int64_t>& variant,
                            const torch::Tensor& tokens) {
    MixedBatchModel& mixed = server.mixed();
    mixed.set_rows(variant);
    nn::T5ModelImpl& model = mixed.model();
    const train::BaseModel& base = server.base();
    nn::AutocastScope scope(base.device, base.precision.autocast);
    torch::Tensor h = model.decoder->decode(tokens.to(base.device).view({-1, 1}), r.encoder_states,
                                            r.encoder_mask, &r.cache);
    return model.lm_head->forward(h.select(1, -1)).to(torch::kFloat32);
  }

  // Chooses each row's token from `logits` (rows `rs`), input by input as sample_or_greedy
  // does, appends it and reports it; marks rows that end.
  void choose(std::vector<Row>& rs, const torch::Tensor& logits) {
    std::map<std::pair<JobState*, size_t>, std::vector<int64_t>> by_input;
    for (size_t i = 0; i < rs.size(); ++i)
      by_input[{rs[i].job.get(), rs[i].input}].push_back(static_cast<int64_t>(i));
    const T5Tokenizer& tok = server.base().tokenizer;
    for (auto& [key, idx] : by_input) {
      InputState& in = rs[static_cast<size_t>(idx[0])].in();
      const decoding::GenerationConfig& c = in.config;
      std::vector<decoding::History> histories;
      for (int64_t i : idx) histories.push_back(rs[static_cast<size_t>(i)].history);
      torch::Tensor scores = in.processors->process(
          histories, logits.index_select(0, torch::tensor(idx, torch::kLong).to(logits.device())));
      torch::Tensor chosen;
      if (c.do_sample) {
        scores = in.processors->warp(scores);
        torch::Tensor probs = torch::softmax(scores, -1).to(torch::kCPU);
        chosen = torch::multinomial(probs, 1, /*replacement=*/false, in.generator).squeeze(1);
      } else {
        chosen = scores.argmax(-1);
      }
      chosen = chosen.to(torch::kCPU).contiguous();
      // The chosen tokens' log-probabilities, without the [rows, vocabulary] log_softmax.
      torch::Tensor logprobs = nn::log_softmax_at(scores, chosen).to(torch::kCPU, torch::kDouble);
      for (size_t k = 0; k < idx.size(); ++k) {
        Row& row = rs[static_cast<size_t>(idx[k])];
        const int64_t t = chosen.data_ptr<int64_t>()[k];
        const double lp = logprobs.data_ptr<double>()[k];
        decoding::Sequence& s = in.sequences[row.sample];
        s.tokens.push_back(t);
        s.token_logprobs.push_back(lp);
        s.logprob_sum += lp;
        row.history.push_back(t);
        if (t == c.eos_token_id) s.finished = true;
        row.ended =
            t == c.eos_token_id || static_cast<int64_t>(s.tokens.size()) >= c.new_token_limit();
        if (row.job->job.on_token && row.sample == 0) {
          StreamToken st;
          st.id = t;
          st.logprob = lp;
          st.special = tok.is_special(t);
          std::string now = tok.decode(s.tokens, true);
          st.text = now.compare(0, row.streamed.size(), row.streamed) == 0
                        ? now.substr(row.streamed.size())
                        : now;
          row.streamed = std::move(now);
          row.job->job.on_token(row.input, st);
        }
      }
    }
  }

  // Rows that ended (or whose job was cancelled or is past its deadline) leave; inputs and
  // jobs that are complete are answered.
  void retire(std::vector<Row>& rs, Ragged& r) {
    std::vector<int64_t> keep;
    std::vector<Row> kept;
    for (size_t i = 0; i < rs.size(); ++i) {
      Row& row = rs[i];
      if (row.ended || !row.job->dropped().first.empty()) {
        if (--row.in().rows_left == 0) finish_input(*row.job, row.input);
        continue;
      }
      keep.push_back(static_cast<int64_t>(i));
      kept.push_back(std::move(row));
    }
    if (kept.size() != rs.size()) keep_rows(r, keep);
    rs = std::move(kept);
  }

  void finish_input(JobState& job, size_t input) {
    InputState& in = job.inputs[input];
    std::vector<train::GeneratedText> generated;
    for (decoding::Sequence& s : in.sequences) {
      s.score = s.logprob_sum;
      generated.push_back({server.base().tokenizer.decode(s.tokens), std::move(s)});
    }
    const auto [why, kind] = job.dropped();
    if (!why.empty()) {
      job.replies[input].error = why;
      job.replies[input].error_kind = kind;
    } else {
      server.finish(job.replies[input], std::move(generated));
    }
    if (--job.inputs_left == 0) {
      used_tokens -= job.tokens;
      job.answer();
    }
  }

  // Prepares a job: sources, settings; inputs with an error are answered at once.
  std::shared_ptr<JobState> prepare(BatchJob job) {
    auto js = std::make_shared<JobState>();
    js->job = std::move(job);
    const size_t n = js->job.requests.size();
    js->replies.resize(n);
    js->inputs.resize(n);
    js->inputs_left = static_cast<int64_t>(n);
    for (size_t i = 0; i < n; ++i) {
      const Request& r = js->job.requests[i];
      InputState& in = js->inputs[i];
      auto ids = server.prepare(r, js->replies[i]);
      if (!ids) continue;
      try {
        in.config = server.settings_of(r).resolved(server.base().model->config());
        in.config.validate("parameters", false);
        check(in.config.new_token_limit() >= 1, "max_new_tokens must be at least 1");
      } catch (const Error& e) {
        js->replies[i].error = e.what();
        js->replies[i].error_kind = ErrorKind::invalid;
        continue;
      }
      in.processors.emplace(in.config);
      in.generator = at::detail::createCPUGenerator(in.config.seed);
      const int64_t samples = in.config.do_sample ? in.config.num_return_sequences : 1;
      in.sequences.resize(static_cast<size_t>(samples));
      in.rows_left = samples;
      in.source = std::move(*ids);
      in.model = server.model_of(r.adapter);
      js->rows += samples;
      js->tokens +=
          samples * (static_cast<int64_t>(in.source.size()) + in.config.new_token_limit());
    }
    return js;
  }

  // The rows of `jobs`' inputs (those without an error), prefilled: encoder pass and first
  // decoder step; their state is returned in `r`.
  std::vector<Row> prefill(const std::vector<std::shared_ptr<JobState>>& jobs, Ragged& r) {
    std::vector<Row> fresh;
    for (const auto& js : jobs)
      for (size_t i = 0; i < js->inputs.size(); ++i) {
        InputState& in = js->inputs[i];
        if (in.rows_left == 0) {  // an error: answered now
          if (--js->inputs_left == 0) js->answer();
          continue;
        }
        for (int64_t s = 0; s < in.rows_left; ++s) {
          Row row;
          row.job = js;
          row.input = i;
          row.sample = static_cast<size_t>(s);
          row.model = in.model;
          row.history = {in.config.decoder_start_token_id};
          fresh.push_back(std::move(row));
        }
      }
    if (fresh.empty()) return fresh;
    const std::vector<int64_t> variant = variant_of(fresh, {});
    int64_t width = 1;
    for (const Row& row : fresh)
      width = std::max<int64_t>(width, static_cast<int64_t>(row.in().source.size()));
    const int64_t B = static_cast<int64_t>(fresh.size());
    const int64_t pad = server.base().tokenizer.pad_id();
    torch::Tensor input = torch::full({B, width}, pad, torch::kLong);
    torch::Tensor mask = torch::zeros({B, width}, torch::kLong);
    std::vector<int64_t> start;
    for (int64_t b = 0; b < B; ++b) {
      const auto& ids = fresh[static_cast<size_t>(b)].in().source;
      const int64_t n = static_cast<int64_t>(ids.size());
      if (n > 0) {
        input[b].narrow(0, 0, n).copy_(torch::tensor(ids, torch::kLong));
        mask[b].narrow(0, 0, n).fill_(1);
      }
      start.push_back(fresh[static_cast<size_t>(b)].in().config.decoder_start_token_id);
    }
    MixedBatchModel& mixed = server.mixed();
    mixed.set_rows(variant);
    const train::BaseModel& base = server.base();
    {
      nn::AutocastScope scope(base.device, base.precision.autocast);
      std::tie(r.encoder_states, r.encoder_mask) =
          mixed.model().encoder->encode(input.to(base.device), mask.to(base.device));
    }
    choose(fresh, decode_step(r, variant, torch::tensor(start, torch::kLong)));
    return fresh;
  }

  int64_t step() {
    torch::NoGradGuard no_grad;
    // 1. The running rows' next token.
    if (!rows.empty()) {
      std::vector<int64_t> last;
      for (const Row& row : rows) last.push_back(row.history.back());
      const std::vector<int64_t> variant = variant_of(rows, {});
      choose(rows, decode_step(ragged, variant, torch::tensor(last, torch::kLong)));
    }
    retire(rows, ragged);
    // 2. Waiting jobs join, in order, while they fit (the first always does in an empty batch).
    joining.clear();
    int64_t joined_inputs = 0, joined_rows = 0;
    while (!waiting.empty()) {
      const auto& js = waiting.front();
      if (const auto [why, kind] = js->dropped(); !why.empty()) {  // answered undecoded
        for (Reply& reply : js->replies)
          if (reply.error.empty()) {
            reply.error = why;
            reply.error_kind = kind;
          }
        joined_inputs += static_cast<int64_t>(js->job.requests.size());
        js->answer();
        waiting.pop_front();
        continue;
      }
      const int64_t rows_now = static_cast<int64_t>(rows.size()) + joined_rows;
      const bool empty = rows_now == 0 && joining.empty();
      if (!empty && (rows_now + js->rows > max_rows || used_tokens + js->tokens > max_tokens))
        break;
      joined_rows += js->rows;
      used_tokens += js->tokens;
      joined_inputs += static_cast<int64_t>(js->job.requests.size());
      joining.push_back(js);
      waiting.pop_front();
    }
    waiting_inputs -= joined_inputs;
    joining_inputs = joined_inputs;
    if (!joining.empty()) {
      Ragged fresh_state;
      std::vector<Row> fresh = prefill(joining, fresh_state);
      retire(fresh, fresh_state);
      ragged = merge(std::move(ragged), std::move(fresh_state));
      for (Row& row : fresh) rows.push_back(std::move(row));
    }
    joining.clear();
    joining_inputs = 0;
    return joined_inputs;
  }
};

ContinuousBatch::ContinuousBatch(AdapterServer& server, int64_t max_rows, int64_t max_tokens)
    : state_(std::make_unique<State>(server, max_rows, max_tokens)) {
  check_usage(max_rows >= 1, "max_batch_rows must be at least 1, got ", max_rows);
  check_usage(max_tokens >= 1, "max_batch_tokens must be at least 1, got ", max_tokens);
}

ContinuousBatch::~ContinuousBatch() = default;

bool ContinuousBatch::takes(const std::vector<Request>& requests) const {
  for (const Request& r : requests) {
    if (!r.error.empty() || !state_->server.has(r.adapter)) continue;  // answered with an error
    if (!state_->server.mixable(r) || state_->server.settings_of(r).num_beams != 1) return false;
  }
  return true;
}

void ContinuousBatch::add(BatchJob job) {
  const int64_t n = static_cast<int64_t>(job.requests.size());
  state_->waiting.push_back(state_->prepare(std::move(job)));
  state_->waiting_inputs += n;
}

int64_t ContinuousBatch::step() {
  return state_->step();
}

int64_t ContinuousBatch::fail(std::exception_ptr error) {
  State& s = *state_;
  auto fail_job = [&](JobState& job) {
    if (job.answered) return;
    job.answered = true;
    job.job.failed(error);
  };
  for (Row& row : s.rows) fail_job(*row.job);
  for (auto& js : s.joining) fail_job(*js);
  for (auto& js : s.waiting) fail_job(*js);
  const int64_t dropped = s.waiting_inputs + s.joining_inputs;
  s.joining.clear();
  s.joining_inputs = 0;
  s.rows.clear();
  s.waiting.clear();
  s.waiting_inputs = 0;
  s.ragged = Ragged();
  s.used_tokens = 0;
  return dropped;
}

bool ContinuousBatch::idle() const {
  return state_->rows.empty() && state_->waiting.empty();
}

int64_t ContinuousBatch::running_rows() const {
  return static_cast<int64_t>(state_->rows.size());
}

int64_t ContinuousBatch::waiting_inputs() const {
  return state_->waiting_inputs;
}

}  // namespace compacter::serve

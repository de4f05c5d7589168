// Logits processors and warpers with transformers' semantics (logits_process.py, 4.3x to 5.x);
// see the header for the order.
#include "compacter/train/decoding/logits_processors.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <map>

#include "compacter/core/error.h"

namespace compacter::decoding {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}

LogitsProcessors::LogitsProcessors(const GenerationConfig& c)
    : repetition_penalty_(c.repetition_penalty),
      no_repeat_ngram_size_(c.no_repeat_ngram_size),
      // _prepare_generated_length: a set min_new_tokens replaces min_length.
      min_length_(c.min_new_tokens >= 0 ? c.min_new_tokens + 1 : c.min_length),
      min_new_tokens_(std::max<int64_t>(0, c.min_new_tokens)),
      eos_(c.eos_token_id),
      temperature_(c.do_sample ? c.temperature : 1.0),
      top_k_(c.do_sample ? c.top_k : 0),
      top_p_(c.do_sample ? c.top_p : 1.0),
      typical_p_(c.do_sample ? c.typical_p : 1.0) {
  // NoBadWordsLogitsProcessor drops the sequence [eos] (</s> stays possible).
  for (auto& seq : c.bad_words())
    if (!(seq.size() == 1 && seq[0] == eos_)) bad_words_.push_back(seq);
}

std::vector<int64_t> banned_ngram_tokens(const History& h, int64_t n) {
  const int64_t len = static_cast<int64_t>(h.size());
  std::vector<int64_t> banned;
  if (n <= 0 || len + 1 < n) return banned;
  // The n-1 tokens the next one would extend: h[len-n+1 .. len-1].
  for (int64_t i = 0; i + n <= len; ++i) {
    bool match = true;
    for (int64_t k = 0; k + 1 < n && match; ++k) match = h[i + k] == h[len - n + 1 + k];
    if (match) banned.push_back(h[i + n - 1]);
  }
  return banned;
}

torch::Tensor LogitsProcessors::process(const std::vector<History>& histories,
                                        torch::Tensor scores) const {
  const int64_t rows = scores.size(0), vocab = scores.size(1);
  check(static_cast<int64_t>(histories.size()) == rows, "logits processors: ", histories.size(),
        " histories for ", rows, " rows");
  if (rows == 0) return scores;
  const int64_t len = static_cast<int64_t>(histories[0].size());
  // RepetitionPenaltyLogitsProcessor: every token of the decoder input (the start token too).
  if (repetition_penalty_ != 1.0) {
    std::vector<int64_t> flat;
    flat.reserve(rows * len);
    for (const History& h : histories) flat.insert(flat.end(), h.begin(), h.end());
    torch::Tensor index = torch::tensor(flat, torch::kLong).view({rows, len}).to(scores.device());
    torch::Tensor picked = scores.gather(1, index);
    picked = torch::where(picked < 0, picked * repetition_penalty_, picked / repetition_penalty_);
    scores = scores.scatter(1, index, picked);
  }
  // Bans as (row, token) pairs set to -inf.
  std::vector<int64_t> ban_rows, ban_tokens;
  auto ban = [&](int64_t r, int64_t t) {
    if (t < 0 || t >= vocab) return;
    ban_rows.push_back(r);
    ban_tokens.push_back(t);
  };
  // transformers refuses a bad word outside the vocabulary (SequenceBiasLogitsProcessor).
  for (const auto& seq : bad_words_)
    for (int64_t t : seq)
      check_usage(t < vocab, "generation option \"bad_words_ids\": token id ", t,
                  " is outside the model's vocabulary (", vocab, " ids)");
  if (no_repeat_ngram_size_ > 0)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t : banned_ngram_tokens(histories[r], no_repeat_ngram_size_)) ban(r, t);
  // NoBadWordsLogitsProcessor: a one-token sequence always; a longer one when the history ends
  // with all its tokens but the last (and the history is at least as long as the sequence).
  for (const auto& seq : bad_words_) {
    const int64_t n = static_cast<int64_t>(seq.size());
    for (int64_t r = 0; r < rows; ++r) {
      if (n == 1) {
        ban(r, seq[0]);
        continue;
      }
      if (n > len) continue;
      const History& h = histories[r];
      bool match = true;
      for (int64_t k = 0; k + 1 < n && match; ++k) match = h[len - (n - 1) + k] == seq[k];
      if (match) ban(r, seq.back());
    }
  }
  // MinLength (the start token counts) and MinNewTokensLength (it does not).
  if ((min_length_ > 0 && len < min_length_) || (min_new_tokens_ > 0 && len - 1 < min_new_tokens_))
    for (int64_t r = 0; r < rows; ++r) ban(r, eos_);
  if (!ban_rows.empty()) {
    scores = scores.clone();  // the caller's tensor stays as it was
    torch::Tensor r = torch::tensor(ban_rows, torch::kLong).to(scores.device());
    torch::Tensor t = torch::tensor(ban_tokens, torch::kLong).to(scores.device());
    scores.index_put_({r, t}, -kInf);
  }
  return scores;
}

torch::Tensor LogitsProcessors::warp(torch::Tensor scores) const {
  if (temperature_ != 1.0) scores = scores / temperature_;
  if (top_k_ != 0) {
    const int64_t k = std::min<int64_t>(std::max<int64_t>(top_k_, 1), scores.size(-1));
    torch::Tensor kth = std::get<0>(torch::topk(scores, k)).select(-1, k - 1).unsqueeze(-1);
    scores = scores.masked_fill(scores < kth, -kInf);
  }
  if (top_p_ < 1.0) {
    auto [sorted, order] = torch::sort(scores, /*dim=*/-1, /*descending=*/false);
    torch::Tensor cumulative = sorted.softmax(-1).cumsum(-1);
    torch::Tensor remove = cumulative <= (1.0 - top_p_);
    remove.narrow(-1, remove.size(-1) - 1, 1).fill_(false);  // keep at least one
    scores = scores.masked_fill(remove.scatter(1, order, remove), -kInf);
  }
  if (typical_p_ < 1.0) {
    torch::Tensor normalized = torch::log_softmax(scores, -1);
    torch::Tensor p = normalized.exp();
    torch::Tensor entropy = -(normalized * p).nansum(-1, /*keepdim=*/true);
    torch::Tensor shifted = ((-normalized) - entropy).abs();
    auto [sorted, order] = torch::sort(shifted, /*dim=*/-1, /*descending=*/false);
    torch::Tensor cumulative = scores.gather(-1, order).softmax(-1).cumsum(-1);
    torch::Tensor last = (cumulative < typical_p_).sum(1).clamp_max(sorted.size(-1) - 1);
    torch::Tensor remove = sorted > sorted.gather(1, last.view({-1, 1}));
    remove.narrow(-1, 0, 1).fill_(false);  // keep at least one
    scores = scores.masked_fill(remove.scatter(1, order, remove), -kInf);
  }
  return scores;
}

}  // namespace compacter::decoding

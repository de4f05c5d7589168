// Beam search with transformers' semantics (generation/utils.py _beam_search, vectorised since
// 4.50, as in 5.x), for encoder-decoder models (decoder_prompt_len 1: the decoder start token).
// Per step:
//   1. log_softmax of the next-token logits (float32), then the logits processors;
//   2. + each beam's running score (float32); at the first step only beam 0 counts (the
//      others start at -1e9);
//   3. the top 2 * num_beams (token, beam) candidates over the input's num_beams x vocab;
//   4. in rank order: a </s> candidate among the first num_beams ranks becomes a finished
//      hypothesis with generated_len = new tokens including </s>; other candidates fill the
//      num_beams running beams; the rest are dropped;
//   5. the input is done when BeamHypotheses::is_done(the best running beam's score, cur_len)
//      holds; done inputs leave the batch (transformers keeps computing them but accepts no
//      more hypotheses for them; no other row changes);
//   6. the self-attention caches follow each running beam's parent (index_select).
// At the length limit, the running beams of inputs not done are added as hypotheses with
// generated_len = the limit (transformers adds the top num_beams candidates of the last step;
// the extra ones added here all score below those, so the n-best list is the same). The result:
// the best num_return_sequences hypotheses per input, sequences_scores as transformers returns
// them (float32).
//
// Older transformers: 4.3x-4.4x stopped on the best *candidate* (a </s> one included) and divided
// in double; before 4.36 (no decoder_prompt_len) beams cut at the limit were divided by
// (generated_len + 1)^length_penalty.
#include "compacter/train/decoding/beam_search.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "compacter/core/error.h"
#include "compacter/train/decoding/decode.h"
#include "compacter/train/decoding/decoder_state.h"
#include "compacter/train/decoding/logits_processors.h"

namespace compacter::decoding {

BeamHypotheses::BeamHypotheses(int64_t num_beams, double length_penalty, std::string early_stopping,
                               int64_t max_length)
    : num_beams_(num_beams),
      length_penalty_(length_penalty),
      early_stopping_(std::move(early_stopping)),
      max_length_(max_length) {}

namespace {

// transformers' `float32 tensor / (length ** length_penalty)`: the power in double (Python's
// float), the division in float32.
float length_normalised(float sum_logprobs, int64_t length, double length_penalty) {
  return sum_logprobs / static_cast<float>(std::pow(static_cast<double>(length), length_penalty));
}

}  // namespace

void BeamHypotheses::add(Hypothesis h, int64_t generated_len) {
  h.score = length_normalised(h.sum_logprobs, generated_len, length_penalty_);
  if (static_cast<int64_t>(beams_.size()) < num_beams_ || h.score > worst_score_) {
    const float score = h.score;
    beams_.push_back(std::move(h));
    if (static_cast<int64_t>(beams_.size()) > num_beams_) {
      std::vector<std::pair<float, size_t>> sorted;
      for (size_t i = 0; i < beams_.size(); ++i) sorted.emplace_back(beams_[i].score, i);
      std::sort(sorted.begin(), sorted.end());
      beams_.erase(beams_.begin() + static_cast<std::ptrdiff_t>(sorted[0].second));
      worst_score_ = sorted[1].first;
    } else {
      worst_score_ = std::min(score, worst_score_);
    }
  }
}

bool BeamHypotheses::is_done(float best_running, int64_t cur_len) const {
  if (static_cast<int64_t>(beams_.size()) < num_beams_) return false;
  if (early_stopping_ == "true") return true;
  const int64_t prompt = 1;
  const int64_t length =
      early_stopping_ == "never" && length_penalty_ > 0.0 ? max_length_ - prompt : cur_len - prompt;
  return !(length_normalised(best_running, length, length_penalty_) > worst_score_);
}

std::vector<Hypothesis> BeamHypotheses::best(int64_t n) const {
  std::vector<Hypothesis> sorted = beams_;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Hypothesis& a, const Hypothesis& b) { return a.score < b.score; });
  std::vector<Hypothesis> out;
  for (int64_t i = 0; i < n && !sorted.empty(); ++i) {
    out.push_back(std::move(sorted.back()));
    sorted.pop_back();
  }
  return out;
}

namespace {

struct Beam {
  std::vector<int64_t> tokens;
  std::vector<double> token_logprobs;
};

}  // namespace

std::vector<std::vector<Sequence>> beam_search(nn::T5ModelImpl& model,
                                               const torch::Tensor& input_ids,
                                               const torch::Tensor& attention_mask,
                                               const GenerationConfig& c,
                                               const DecodeOptions& options) {
  const int64_t inputs = input_ids.size(0), K = c.num_beams;
  const int64_t limit = c.new_token_limit();
  const int64_t vocab = model.config().vocab_size;
  check_usage(2 * K <= K * vocab, "num_beams: the vocabulary (", vocab,
              ") is too small for beam search");
  const bool fixed_work = !options.stop_when_all_finished;
  std::vector<BeamHypotheses> hyps;
  for (int64_t b = 0; b < inputs; ++b)
    hyps.emplace_back(K, c.length_penalty, c.early_stopping, limit + 1);
  if (limit > 0 && inputs > 0) {
    DecoderState state(model, input_ids, attention_mask, K);
    const torch::Device device = state.device();
    const LogitsProcessors processors(c);
    std::vector<int64_t> active(static_cast<size_t>(inputs));  // original input of each block
    for (int64_t b = 0; b < inputs; ++b) active[b] = b;
    std::vector<Beam> beams(static_cast<size_t>(inputs * K));
    std::vector<float> start_scores(beams.size(), 0.0f);
    for (size_t r = 0; r < beams.size(); ++r)
      if (r % K != 0) start_scores[r] = -1e9f;
    torch::Tensor beam_scores = torch::tensor(start_scores, torch::kFloat32).to(device);
    torch::Tensor next = torch::full({inputs * K}, c.decoder_start_token_id, torch::kLong);
    for (int64_t step = 0; step < limit; ++step) {
      const int64_t blocks = static_cast<int64_t>(active.size());
      std::vector<History> histories(beams.size());
      for (size_t r = 0; r < beams.size(); ++r) {
        histories[r].reserve(beams[r].tokens.size() + 1);
        histories[r].push_back(c.decoder_start_token_id);
        histories[r].insert(histories[r].end(), beams[r].tokens.begin(), beams[r].tokens.end());
      }
      torch::Tensor logprobs =
          processors.process(histories, torch::log_softmax(state.step(next), -1));
      torch::Tensor flat = (logprobs + beam_scores.unsqueeze(1)).view({blocks, K * vocab});
      auto [top_scores, top_index] = torch::topk(flat, 2 * K, 1, /*largest=*/true, /*sorted=*/true);
      torch::Tensor top_logprobs = logprobs.view({blocks, K * vocab}).gather(1, top_index);
      top_scores = top_scores.to(torch::kCPU).contiguous();
      top_index = top_index.to(torch::kCPU).contiguous();
      top_logprobs = top_logprobs.to(torch::kCPU, torch::kDouble).contiguous();
      const float* score = top_scores.data_ptr<float>();
      const int64_t* index = top_index.data_ptr<int64_t>();
      const double* token_lp = top_logprobs.data_ptr<double>();
      const int64_t cur_len = step + 2;  // start token + tokens so far + this step's

      std::vector<Beam> next_beams(beams.size());
      std::vector<float> next_scores(beams.size());
      std::vector<int64_t> next_tokens(beams.size()), parents(beams.size());
      std::vector<int64_t> still;  // blocks (positions in `active`) not done
      for (int64_t b = 0; b < blocks; ++b) {
        BeamHypotheses& h = hyps[active[b]];
        int64_t filled = 0;
        for (int64_t rank = 0; rank < 2 * K && filled < K; ++rank) {
          const int64_t i = b * 2 * K + rank;
          const int64_t parent = b * K + index[i] / vocab, token = index[i] % vocab;
          if (token == c.eos_token_id) {
            if (rank >= K) continue;
            Hypothesis done;
            done.tokens = beams[parent].tokens;
            done.tokens.push_back(token);
            done.token_logprobs = beams[parent].token_logprobs;
            done.token_logprobs.push_back(token_lp[i]);
            done.sum_logprobs = score[i];
            done.finished = true;
            h.add(std::move(done), step + 1);
            continue;
          }
          const int64_t slot = b * K + filled++;
          next_scores[slot] = score[i];
          next_tokens[slot] = token;
          parents[slot] = parent;
          next_beams[slot] = beams[parent];
          next_beams[slot].tokens.push_back(token);
          next_beams[slot].token_logprobs.push_back(token_lp[i]);
        }
        check(filled == K, "beam search: fewer than num_beams candidates that are not </s>");
        const bool done = !fixed_work && h.is_done(next_scores[b * K], cur_len);
        if (!done) still.push_back(b);
      }
      if (options.on_step) options.on_step(step, torch::tensor(next_tokens, torch::kLong));
      if (step + 1 == limit) {  // the length limit: the running beams become hypotheses
        for (int64_t b : still)
          for (int64_t k = 0; k < K; ++k) {
            const int64_t slot = b * K + k;
            Hypothesis cut;
            cut.tokens = std::move(next_beams[slot].tokens);
            cut.token_logprobs = std::move(next_beams[slot].token_logprobs);
            cut.sum_logprobs = next_scores[slot];
            hyps[active[b]].add(std::move(cut), step + 1);
          }
        break;
      }
      if (still.empty()) break;
      // Rows of the inputs still running, each following its parent beam.
      std::vector<int64_t> keep, new_active;
      std::vector<Beam> kept_beams;
      std::vector<float> kept_scores;
      std::vector<int64_t> kept_tokens;
      for (int64_t b : still) {
        new_active.push_back(active[b]);
        for (int64_t k = 0; k < K; ++k) {
          const int64_t slot = b * K + k;
          keep.push_back(parents[slot]);
          kept_beams.push_back(std::move(next_beams[slot]));
          kept_scores.push_back(next_scores[slot]);
          kept_tokens.push_back(next_tokens[slot]);
        }
      }
      if (static_cast<int64_t>(still.size()) == blocks)
        state.reorder_self_attention(torch::tensor(keep, torch::kLong));
      else
        state.keep_rows(torch::tensor(keep, torch::kLong));
      active = std::move(new_active);
      beams = std::move(kept_beams);
      beam_scores = torch::tensor(kept_scores, torch::kFloat32).to(device);
      next = torch::tensor(kept_tokens, torch::kLong);
    }
  }
  std::vector<std::vector<Sequence>> out(static_cast<size_t>(inputs));
  for (int64_t b = 0; b < inputs; ++b) {
    for (Hypothesis& h : hyps[b].best(c.num_return_sequences)) {
      Sequence s;
      s.tokens = std::move(h.tokens);
      s.token_logprobs = std::move(h.token_logprobs);
      s.logprob_sum = h.sum_logprobs;
      s.score = h.score;
      s.finished = h.finished;
      out[b].push_back(std::move(s));
    }
    while (static_cast<int64_t>(out[b].size()) < c.num_return_sequences)
      out[b].push_back(Sequence{});  // limit 0: empty sequences
  }
  return out;
}

}  // namespace compacter::decoding

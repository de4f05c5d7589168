// transformers' logits processors and sampling warpers (generation/logits_process.py, 4.3x to
// 5.x), in the order GenerationMixin._get_logits_processor builds them (before 4.42 the warpers
// came from _get_logits_warper, in the same order):
//   processors: RepetitionPenalty -> NoRepeatNGram -> NoBadWords -> MinLength -> MinNewTokensLength
//   warpers (sampling only): Temperature -> TopK -> TopP -> Typical (min_tokens_to_keep 1)
// Greedy and sampling apply them to the raw logits; beam search to log_softmax(logits). Each
// stage is built only when its setting is not neutral, as transformers does.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "compacter/train/decoding/generation_config.h"

namespace compacter::decoding {

// One row's decoder input so far: the decoder start token, then every token generated.
using History = std::vector<int64_t>;

class LogitsProcessors {
 public:
  // `config` resolved (its ids set); validated.
  explicit LogitsProcessors(const GenerationConfig& config);

  // scores [R, V] (float) for rows whose histories (all of one length) are given: the
  // processors' output (a new tensor, or `scores` itself when none applies).
  torch::Tensor process(const std::vector<History>& histories, torch::Tensor scores) const;
  // The sampling warpers on processed scores [R, V].
  torch::Tensor warp(torch::Tensor scores) const;

 private:
  double repetition_penalty_;
  int64_t no_repeat_ngram_size_;
  std::vector<std::vector<int64_t>> bad_words_;  // without the sequence [eos]
  int64_t min_length_, min_new_tokens_, eos_;
  double temperature_;
  int64_t top_k_;
  double top_p_, typical_p_;
};

// The tokens NoRepeatNGramLogitsProcessor bans after `history` (transformers'
// _calc_banned_ngram_tokens): every token that followed an earlier occurrence of the last n-1
// tokens (n = 1: every token seen).
std::vector<int64_t> banned_ngram_tokens(const History& history, int64_t n);

}  // namespace compacter::decoding

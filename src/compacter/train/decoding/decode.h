// Decoding as transformers' GenerationMixin.generate does it for encoder-decoder models
// (transformers 5.x; docs/decoding.md says where 4.3x differed): greedy search (num_beams 1),
// multinomial sampling (do_sample) and beam search (num_beams > 1), with the logits processors of
// logits_processors.h, an n-best list per input and scores. Docs: docs/decoding.md.
//
// Scores:
//   beam search  score = transformers' sequences_scores: sum_logprobs / length^length_penalty
//                (length = new tokens, </s> included; float32 as transformers keeps it), where
//                sum_logprobs is the beam's running sum of processed log-probabilities
//                (log_softmax, then the processors), accumulated in float32.
//   greedy, sampling  score = logprob_sum = the sum of token_logprobs.
//   token_logprobs  one per generated token: what transformers' compute_transition_scores gives
//                (greedy and sampling: normalize_logits=True, i.e. log_softmax of the processed
//                and warped scores the token was chosen from; beam search: the processed
//                log-probability, as transformers' beam scores are).
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "compacter/nn/t5.h"
#include "compacter/train/decoding/generation_config.h"

namespace compacter::decoding {

struct Sequence {
  std::vector<int64_t> tokens;  // new ids without the decoder start token; </s> kept when ended
  double score = 0.0;           // see the top comment
  double logprob_sum = 0.0;
  std::vector<double> token_logprobs;  // one per token
  bool finished = false;               // ended with </s> (else cut at the length limit)
};

struct DecodeOptions {
  // false: every step up to the length limit runs for every row, also once all have ended (and
  // beam search never declares an input done), for benchmarks that need a fixed amount of work.
  bool stop_when_all_finished = true;
  // Called after each step with that step's tokens, one per row (inputs x beams, or inputs x
  // samples; pad for rows that have ended); it may throw to stop.
  std::function<void(int64_t step, const torch::Tensor& tokens)> on_step;
};

// input_ids / attention_mask [B, S] (right-padded). Returns, for each input, its
// num_return_sequences sequences, best first for beam search. `config` is validated and its
// ids resolved from the model. Runs in eval mode without gradients; the model's mode is kept.
std::vector<std::vector<Sequence>> generate(nn::T5ModelImpl& model, const torch::Tensor& input_ids,
                                            const torch::Tensor& attention_mask,
                                            const GenerationConfig& config,
                                            const DecodeOptions& options = {});

// The sequences, input by input, as one [rows, L] tensor padded with `pad` (L: the longest, or
// `min_width` when larger).
torch::Tensor padded_tokens(const std::vector<std::vector<Sequence>>& sequences, int64_t pad,
                            int64_t min_width = 0);

// The id transformers' generate pads its returned sequences with (`config` resolved): pad_token_id
// for greedy search and sampling; for beam search `pad_token_id or eos_token_id`, i.e. </s> when
// the pad id is 0, as T5's is (5.x's _beam_search).
int64_t output_padding_id(const GenerationConfig& config);

// Greedy search or sampling (num_beams 1), and beam search: the two loops `generate` picks from
// (`config` resolved and validated).
std::vector<std::vector<Sequence>> sample_or_greedy(nn::T5ModelImpl& model,
                                                    const torch::Tensor& input_ids,
                                                    const torch::Tensor& attention_mask,
                                                    const GenerationConfig& config,
                                                    const DecodeOptions& options);
std::vector<std::vector<Sequence>> beam_search(nn::T5ModelImpl& model,
                                               const torch::Tensor& input_ids,
                                               const torch::Tensor& attention_mask,
                                               const GenerationConfig& config,
                                               const DecodeOptions& options);

}  // namespace compacter::decoding

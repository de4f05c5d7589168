// T5's span-corruption pretraining objective (Raffel et al. 2020, section 3.1.4), with the
// conventions of Hugging Face's run_t5_mlm_flax.py (DataCollatorForT5MLM), and the packing of a
// token stream into fixed-length examples.
//
// For a sequence of L token ids (no </s>):
//   noise tokens   N = clamp(round(L * density), 1, L - 1)
//   noise spans    S = max(1, round(N / mean_span))   (also at most L - N; see below)
//   noise span lengths: a uniformly random composition of N into S positive parts; the L - N
//   non-noise tokens likewise; the spans interleave starting with a non-noise span, so the
//   sequence always ends with a noise span (HF does not roll the mask as T5's random_roll does).
//   input  = nonnoise_0 <extra_id_0> nonnoise_1 <extra_id_1> ... nonnoise_{S-1} <extra_id_{S-1}>
//   </s> target = <extra_id_0> noise_0 <extra_id_1> noise_1 ... <extra_id_{S-1}> noise_{S-1} </s>
// The target has no closing sentinel after the last span: it would be HF's sentinel for a
// trailing non-noise span, and there is none. Span k's sentinel is first_sentinel_id - k, counting
// down from the end of the pretraining vocabulary as T5's noise_span_to_unique_sentinel does
// (sentinel_id(vocabulary) + 1 - cumsum(first noise tokens), sentinel_id = vocab_size - 1):
// 32099 - k = <extra_id_k> for T5's SentencePiece vocabulary; 258 - k (the byte values 0xFF,
// 0xFE, ...) for ByT5's bytes (see sentinels_for below). round() is round-half-to-even, as
// numpy's.
//
// Deviation from HF, only in degenerate cases that crash HF: S is capped at L - N so that the
// non-noise tokens can fill S spans (never binds for density 0.15, mean 3).
//
// Randomness comes only from the std::mt19937_64 passed in (whose output is fixed by the C++
// standard) through our own unbiased bounded draws, so results are the same on every platform.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "compacter/data/tokenizer.h"

namespace compacter::pretrain {

// Uniform integer in [0, n) from the raw 64-bit output (rejection sampling, so unbiased and the
// same on every standard library, unlike std::uniform_int_distribution). n >= 1.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n);

struct SpanCorruption {
  double noise_density = 0.15;
  double mean_noise_span_length = 3.0;
  int64_t first_sentinel_id = 32099;  // id of <extra_id_0>; <extra_id_k> = first - k
  int64_t sentinel_count = 100;       // sentinels available; more spans than this is an error
  int64_t eos_id = 1;                 // </s>, appended to input and target
};

// ByT5's pretraining sentinels: google-research/byt5 pretrains with t5.data.ByteVocabulary()
// (no extra ids: vocab_size 259) and T5's span_corruption, so span k is marked by 258 - k, the
// ids of the byte values 0xFF, 0xFE, ... (transformers' ByT5 documentation: "mask tokens count
// down from index 258"), not by the tokenizer's <extra_id_k> = 259 + k, which ByT5 checkpoints
// never saw. Only the 11 bytes 0xF5..0xFF never occur in UTF-8, so at most 11 spans are used.
inline constexpr int64_t kByteFirstSentinel = 258;
inline constexpr int64_t kByteSentinelCount = 11;
inline constexpr int64_t kByteFirstSentinelByte = 0xF5;  // 0xF5..0xFF: sentinels (ids 248..258)

// first_sentinel_id, sentinel_count and eos_id for pretraining with `tokenizer`: SentencePiece
// (T5, mT5, a trained vocabulary): <extra_id_0> = tokenizer.sentinel_id(0), counting down over
// its extra ids (T5's vocab_size - 1 - k); byte level: kByteFirstSentinel, kByteSentinelCount.
void use_sentinels_of(const T5Tokenizer& tokenizer, SpanCorruption& config);

struct CorruptedExample {
  std::vector<int64_t> input_ids;   // ends with </s>
  std::vector<int64_t> target_ids;  // ends with </s>
};

// The noise mask of a length-`length` sequence (true = noise), as described above.
// Throws Error when length < 2, density is outside (0, 1) or mean_span <= 0.
std::vector<bool> random_spans_noise_mask(int64_t length, double noise_density,
                                          double mean_noise_span_length, std::mt19937_64& rng);

// Replaces each noise span of `mask` by one sentinel (input) and keeps the noise spans after
// their sentinels (target), both ending with </s>. mask.size() must equal tokens.size().
CorruptedExample apply_noise_mask(const std::vector<int64_t>& tokens, const std::vector<bool>& mask,
                                  const SpanCorruption& config);

// random_spans_noise_mask + apply_noise_mask. `tokens` must not contain </s> at its end unless it
// is meant to be corrupted like any token (HF's packed chunks contain the </s> of each document).
// Throws Error when tokens.size() < 2 or when more spans than config.sentinel_count are needed.
CorruptedExample corrupt_spans(const std::vector<int64_t>& tokens, const SpanCorruption& config,
                               std::mt19937_64& rng);

// Number of noise tokens and noise spans for a length-L sequence (the formulas above).
struct NoiseCounts {
  int64_t noise_tokens = 0;
  int64_t noise_spans = 0;
};
NoiseCounts noise_counts(int64_t length, double noise_density, double mean_noise_span_length);

// HF's compute_input_and_target_lengths: the largest raw chunk length T whose corrupted input
// (non-noise tokens + one sentinel per span + </s>) is at most `inputs_length` ids, and the
// target length (noise tokens + sentinels + </s>) for it. For inputs_length 512, density 0.15,
// mean 3: T = 568, targets 114. The corrupted input of a length-T chunk then has exactly
// inputs_length ids (for density 0.15 and mean 3: whenever inputs_length >= 10; below, even T =
// inputs_length gives one id more, and that T is returned).
struct ExpandedLengths {
  int64_t tokens_length = 0;   // raw tokens per chunk, to pass to pack_token_stream
  int64_t inputs_length = 0;   // ids of the corrupted input, </s> included
  int64_t targets_length = 0;  // ids of the target, </s> included
};
ExpandedLengths expanded_lengths(int64_t inputs_length, double noise_density,
                                 double mean_noise_span_length);

// Packs tokenised documents the way run_t5_mlm_flax.py's group_texts does: every document
// followed by </s> (eos_id; skipped when eos_id < 0), all concatenated, then cut into chunks of
// exactly `chunk_length` ids. The incomplete last chunk is dropped unless keep_tail is set and it
// has at least 2 ids. Empty documents contribute only their </s>.
std::vector<std::vector<int64_t>> pack_token_stream(const std::vector<std::vector<int64_t>>& docs,
                                                    int64_t chunk_length, int64_t eos_id = 1,
                                                    bool keep_tail = false);

}  // namespace compacter::pretrain

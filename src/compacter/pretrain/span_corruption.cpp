// Span corruption (T5 / Hugging Face run_t5_mlm_flax.py conventions) and stream packing; see
// span_corruption.h for the formulas.
#include "compacter/pretrain/span_corruption.h"

#include <algorithm>
#include <cmath>

#include "compacter/core/error.h"

namespace compacter::pretrain {
namespace {

// numpy's round (half to even) for the non-negative values used here.
int64_t round_half_even(double x) {
  return static_cast<int64_t>(std::nearbyint(x));  // default rounding mode: to nearest even
}

// A uniformly random composition of `items` into `segments` positive parts: choose segments-1
// of the items-1 gaps as cut points (a Fisher-Yates shuffle of the gap flags, as HF shuffles).
std::vector<int64_t> random_segmentation(int64_t items, int64_t segments, std::mt19937_64& rng) {
  std::vector<char> first_in_segment(static_cast<size_t>(items - 1), 0);
  for (int64_t i = 0; i < segments - 1; ++i) first_in_segment[static_cast<size_t>(i)] = 1;
  for (size_t i = first_in_segment.size(); i > 1; --i)
    std::swap(first_in_segment[i - 1], first_in_segment[uniform_below(rng, i)]);
  std::vector<int64_t> lengths{1};
  for (char cut : first_in_segment) {
    if (cut)
      lengths.push_back(1);
    else
      ++lengths.back();
  }
  return lengths;
}

void check_rates(double noise_density, double mean_noise_span_length) {
  check(noise_density > 0 && noise_density < 1,
        "span corruption: noise density must be in (0, 1), got ", noise_density);
  check(mean_noise_span_length > 0, "span corruption: mean noise span length must be > 0, got ",
        mean_noise_span_length);
}

}  // namespace

void use_sentinels_of(const T5Tokenizer& tokenizer, SpanCorruption& config) {
  config.eos_id = tokenizer.eos_id();
  if (tokenizer.is_byte_level()) {
    config.first_sentinel_id = kByteFirstSentinel;
    config.sentinel_count = kByteSentinelCount;
    return;
  }
  const int64_t extra_ids = tokenizer.vocab_size() - tokenizer.piece_count();
  check(extra_ids > 0, "span corruption: the tokenizer ", tokenizer.source(),
        " has no sentinels (<extra_id_0> ...)");
  config.first_sentinel_id = tokenizer.sentinel_id(0);
  config.sentinel_count = extra_ids;
}

uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // multiple of n (or UINT64_MAX)
  uint64_t r = rng();
  while (r >= limit) r = rng();
  return r % n;
}

NoiseCounts noise_counts(int64_t length, double noise_density, double mean_noise_span_length) {
  check_rates(noise_density, mean_noise_span_length);
  check(length >= 2, "span corruption needs at least 2 tokens, got ", length);
  NoiseCounts c;
  c.noise_tokens = std::clamp<int64_t>(round_half_even(static_cast<double>(length) * noise_density),
                                       1, length - 1);
  c.noise_spans = std::max<int64_t>(
      1, round_half_even(static_cast<double>(c.noise_tokens) / mean_noise_span_length));
  c.noise_spans = std::min(c.noise_spans, length - c.noise_tokens);
  return c;
}

std::vector<bool> random_spans_noise_mask(int64_t length, double noise_density,
                                          double mean_noise_span_length, std::mt19937_64& rng) {
  const NoiseCounts c = noise_counts(length, noise_density, mean_noise_span_length);
  // HF draws the noise segmentation first, then the non-noise one.
  const std::vector<int64_t> noise = random_segmentation(c.noise_tokens, c.noise_spans, rng);
  const std::vector<int64_t> nonnoise =
      random_segmentation(length - c.noise_tokens, c.noise_spans, rng);
  std::vector<bool> mask;
  mask.reserve(static_cast<size_t>(length));
  for (size_t s = 0; s < noise.size(); ++s) {
    mask.insert(mask.end(), static_cast<size_t>(nonnoise[s]), false);
    mask.insert(mask.end(), static_cast<size_t>(noise[s]), true);
  }
  return mask;
}

CorruptedExample apply_noise_mask(const std::vector<int64_t>& tokens, const std::vector<bool>& mask,
                                  const SpanCorruption& config) {
  check(tokens.size() == mask.size(), "span corruption: ", tokens.size(), " tokens but a mask of ",
        mask.size());
  CorruptedExample out;
  int64_t span = 0;  // index of the next sentinel
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!mask[i]) {
      out.input_ids.push_back(tokens[i]);
      continue;
    }
    if (i == 0 || !mask[i - 1]) {  // a noise span starts: one sentinel in both sequences
      check(span < config.sentinel_count, "span corruption: a sequence of ", tokens.size(),
            " tokens needs more than ", config.sentinel_count, " sentinels");
      const int64_t sentinel = config.first_sentinel_id - span++;
      out.input_ids.push_back(sentinel);
      out.target_ids.push_back(sentinel);
    }
    out.target_ids.push_back(tokens[i]);
  }
  out.input_ids.push_back(config.eos_id);
  out.target_ids.push_back(config.eos_id);
  return out;
}

CorruptedExample corrupt_spans(const std::vector<int64_t>& tokens, const SpanCorruption& config,
                               std::mt19937_64& rng) {
  const auto length = static_cast<int64_t>(tokens.size());
  const NoiseCounts c = noise_counts(length, config.noise_density, config.mean_noise_span_length);
  check(c.noise_spans <= config.sentinel_count, "span corruption: a sequence of ", length,
        " tokens has ", c.noise_spans, " noise spans but only ", config.sentinel_count,
        " sentinels exist (use a shorter input length or a longer mean span length)");
  return apply_noise_mask(
      tokens,
      random_spans_noise_mask(length, config.noise_density, config.mean_noise_span_length, rng),
      config);
}

ExpandedLengths expanded_lengths(int64_t inputs_length, double noise_density,
                                 double mean_noise_span_length) {
  check(inputs_length >= 2, "span corruption: inputs length must be >= 2, got ", inputs_length);
  auto lengths = [&](int64_t tokens) {
    const NoiseCounts c = noise_counts(tokens, noise_density, mean_noise_span_length);
    return ExpandedLengths{tokens, tokens - c.noise_tokens + c.noise_spans + 1,
                           c.noise_tokens + c.noise_spans + 1};
  };
  int64_t tokens = inputs_length;
  while (lengths(tokens + 1).inputs_length <= inputs_length) ++tokens;
  return lengths(tokens);
}

std::vector<std::vector<int64_t>> pack_token_stream(const std::vector<std::vector<int64_t>>& docs,
                                                    int64_t chunk_length, int64_t eos_id,
                                                    bool keep_tail) {
  check(chunk_length >= 2, "packing: chunk length must be >= 2, got ", chunk_length);
  std::vector<std::vector<int64_t>> chunks;
  std::vector<int64_t> current;
  current.reserve(static_cast<size_t>(chunk_length));
  auto push = [&](int64_t id) {
    current.push_back(id);
    if (static_cast<int64_t>(current.size()) == chunk_length) {
      chunks.push_back(std::move(current));
      current = {};
      current.reserve(static_cast<size_t>(chunk_length));
    }
  };
  for (const auto& doc : docs) {
    for (int64_t id : doc) push(id);
    if (eos_id >= 0) push(eos_id);
  }
  if (keep_tail && current.size() >= 2) chunks.push_back(std::move(current));
  return chunks;
}

}  // namespace compacter::pretrain

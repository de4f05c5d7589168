// Pretraining examples from plain-text files: see corpus.h.
#include "compacter/pretrain/corpus.h"

#include <algorithm>
#include <fstream>
#include <random>

#include "compacter/core/error.h"

namespace compacter::pretrain {

std::vector<std::vector<int64_t>> pack_text_files(const std::vector<std::string>& files,
                                                  const T5Tokenizer& tokenizer,
                                                  int64_t input_length, double noise_density,
                                                  double mean_noise_span_length,
                                                  CorpusStats& stats) {
  check(!files.empty(), "no text files given");
  stats = CorpusStats{};
  stats.lengths = expanded_lengths(input_length, noise_density, mean_noise_span_length);
  std::vector<std::vector<int64_t>> docs;
  for (const std::string& path : files) {
    std::ifstream in(path);
    check(in.good(), "cannot read text file ", path);
    std::string line;
    int64_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      // Bytes 0xF5..0xFF never occur in UTF-8; ByT5's span corruption uses them as sentinels.
      if (tokenizer.is_byte_level())
        for (const char ch : line)
          check(
              static_cast<unsigned char>(ch) < kByteFirstSentinelByte, path, ": line ", number,
              ": byte 0x", std::hex, static_cast<int>(static_cast<unsigned char>(ch)), std::dec,
              " is not UTF-8 (the byte-level tokenizer's span corruption uses the bytes 0xF5-0xFF "
              "as sentinels)");
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      docs.push_back(tokenizer.encode(line, -1, /*add_eos=*/false));
      stats.tokens += static_cast<int64_t>(docs.back().size()) + 1;
    }
    check(!in.bad(), "error while reading ", path);
  }
  stats.documents = static_cast<int64_t>(docs.size());
  auto chunks = pack_token_stream(docs, stats.lengths.tokens_length, tokenizer.eos_id());
  stats.chunks = static_cast<int64_t>(chunks.size());
  check(!chunks.empty(), "the text files hold ", stats.tokens, " tokens, fewer than one chunk of ",
        stats.lengths.tokens_length, " (input length ", input_length,
        "): give more text or a smaller --input-length");
  return chunks;
}

namespace {

// A uniform double in [0, 1) from the top 53 bits.
double uniform_unit(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

}  // namespace

CorruptedExample prefix_lm_example(const std::vector<int64_t>& tokens, int64_t max_target_tokens,
                                   int64_t eos_id, std::mt19937_64& rng) {
  const int64_t length = static_cast<int64_t>(tokens.size());
  check(length >= 2, "prefix LM needs at least 2 tokens, got ", length);
  check(max_target_tokens >= 1, "prefix LM: max_target_tokens must be at least 1");
  const int64_t most = std::min(max_target_tokens, length - 1);
  const int64_t split = length - 1 - static_cast<int64_t>(uniform_below(rng, most));
  CorruptedExample e;
  e.input_ids.assign(tokens.begin(), tokens.begin() + split);
  e.target_ids.assign(tokens.begin() + split, tokens.end());
  e.input_ids.push_back(eos_id);
  e.target_ids.push_back(eos_id);
  return e;
}

std::vector<tasks::EncodedExample> corrupt_chunks(const std::vector<std::vector<int64_t>>& chunks,
                                                  const SpanCorruption& config, int64_t rounds,
                                                  uint64_t seed, double prefix_lm_fraction) {
  check(rounds >= 1, "corruption rounds must be at least 1, got ", rounds);
  check(prefix_lm_fraction >= 0.0 && prefix_lm_fraction <= 1.0,
        "prefix_lm_fraction must be in [0, 1], got ", prefix_lm_fraction);
  std::vector<tasks::EncodedExample> out;
  out.reserve(chunks.size() * static_cast<size_t>(rounds));
  for (int64_t r = 0; r < rounds; ++r) {
    std::mt19937_64 rng(seed + static_cast<uint64_t>(r));
    for (const auto& chunk : chunks) {
      CorruptedExample c;
      if (prefix_lm_fraction > 0.0 && uniform_unit(rng) < prefix_lm_fraction) {
        // As many target tokens as span corruption's target holds at most (its sentinels and
        // noise tokens, without </s>).
        const auto counts = noise_counts(static_cast<int64_t>(chunk.size()), config.noise_density,
                                         config.mean_noise_span_length);
        c = prefix_lm_example(chunk, counts.noise_tokens + counts.noise_spans, config.eos_id, rng);
      } else {
        c = corrupt_spans(chunk, config, rng);
      }
      out.push_back({std::move(c.input_ids), std::move(c.target_ids)});
    }
  }
  return out;
}

}  // namespace compacter::pretrain

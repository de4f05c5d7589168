// Tests of T5 span corruption (pretrain/span_corruption.h) on fixed input: noise fraction, span
// counts and lengths, sentinel order, reconstruction of the original sequence from input and
// target by an independent loop, HF's expanded input lengths, and stream packing.
#include "compacter/pretrain/span_corruption.h"

#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/data/tokenizer.h"
#include "compacter/pretrain/corpus.h"
#include "support/test_support.h"

namespace compacter::pretrain {
namespace {

using Ids = std::vector<int64_t>;

constexpr int64_t kFirstSentinel = 32099;

bool is_sentinel(int64_t id) {
  return id <= kFirstSentinel && id > kFirstSentinel - 100;
}

// The tokens 100, 101, ..., 100 + n - 1 (no sentinel, no </s>).
Ids iota_tokens(int64_t n) {
  Ids t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), 100);
  return t;
}

// Rebuilds the original sequence: walk the input; at the k-th sentinel, copy the tokens that
// follow the k-th sentinel in the target up to the next sentinel or </s>.
Ids reconstruct(const Ids& input, const Ids& target) {
  Ids out;
  for (size_t i = 0; i + 1 < input.size(); ++i) {  // the last input id is </s>
    if (!is_sentinel(input[i])) {
      out.push_back(input[i]);
      continue;
    }
    size_t j = 0;
    while (j < target.size() && target[j] != input[i]) ++j;
    EXPECT_LT(j, target.size()) << "sentinel " << input[i] << " missing from the target";
    for (++j; j < target.size() && !is_sentinel(target[j]) && target[j] != 1; ++j)
      out.push_back(target[j]);
  }
  return out;
}

// Lengths of the runs of true in a mask.
std::vector<int64_t> true_runs(const std::vector<bool>& mask) {
  std::vector<int64_t> runs;
  for (size_t i = 0; i < mask.size(); ++i) {
    if (!mask[i]) continue;
    if (i == 0 || !mask[i - 1]) runs.push_back(0);
    ++runs.back();
  }
  return runs;
}

TEST(PretrainSpanCorruption, NoiseCountsFollowT5) {
  EXPECT_EQ(noise_counts(100, 0.15, 3.0).noise_tokens, 15);
  EXPECT_EQ(noise_counts(100, 0.15, 3.0).noise_spans, 5);
  EXPECT_EQ(noise_counts(568, 0.15, 3.0).noise_tokens, 85);
  EXPECT_EQ(noise_counts(568, 0.15, 3.0).noise_spans, 28);
  // At least one noise token and one span; never all tokens.
  EXPECT_EQ(noise_counts(2, 0.15, 3.0).noise_tokens, 1);
  EXPECT_EQ(noise_counts(2, 0.15, 3.0).noise_spans, 1);
  EXPECT_EQ(noise_counts(4, 0.99, 3.0).noise_tokens, 3);
  // numpy rounds halves to even: 10 * 0.25 = 2.5 -> 2; 30 * 0.25 = 7.5 -> 8.
  EXPECT_EQ(noise_counts(10, 0.25, 3.0).noise_tokens, 2);
  EXPECT_EQ(noise_counts(30, 0.25, 3.0).noise_tokens, 8);
}

TEST(PretrainSpanCorruption, FixedInputHasT5Structure) {
  const Ids tokens = iota_tokens(100);
  const SpanCorruption config;  // 0.15, 3, <extra_id_0> = 32099, </s> = 1
  for (uint64_t seed = 0; seed < 200; ++seed) {
    std::mt19937_64 rng(seed);
    const std::vector<bool> mask = random_spans_noise_mask(100, 0.15, 3.0, rng);
    ASSERT_EQ(mask.size(), 100u);
    EXPECT_EQ(std::count(mask.begin(), mask.end(), true), 15) << "seed " << seed;
    EXPECT_FALSE(mask.front()) << "starts with a non-noise span";
    EXPECT_TRUE(mask.back()) << "ends with a noise span";
    const std::vector<int64_t> runs = true_runs(mask);
    EXPECT_EQ(runs.size(), 5u);
    for (int64_t r : runs) EXPECT_GE(r, 1);

    const CorruptedExample ex = apply_noise_mask(tokens, mask, config);
    EXPECT_EQ(ex.input_ids.size(), 100u - 15 + 5 + 1);
    EXPECT_EQ(ex.target_ids.size(), 15u + 5 + 1);
    EXPECT_EQ(ex.input_ids.back(), 1);
    EXPECT_EQ(ex.target_ids.back(), 1);
    EXPECT_TRUE(is_sentinel(ex.target_ids.front())) << "the target starts with <extra_id_0>";
    // Sentinels appear as <extra_id_0>, <extra_id_1>, ... in both sequences.
    Ids in_sentinels, target_sentinels;
    for (int64_t id : ex.input_ids)
      if (is_sentinel(id)) in_sentinels.push_back(id);
    for (int64_t id : ex.target_ids)
      if (is_sentinel(id)) target_sentinels.push_back(id);
    EXPECT_EQ(in_sentinels, (Ids{32099, 32098, 32097, 32096, 32095}));
    EXPECT_EQ(target_sentinels, in_sentinels);
    // The input's last real entry is a sentinel (the sequence ends with noise): HF's layout.
    EXPECT_EQ(ex.input_ids[ex.input_ids.size() - 2], 32095);
    EXPECT_EQ(reconstruct(ex.input_ids, ex.target_ids), tokens);
  }
}

TEST(PretrainSpanCorruption, HandWrittenMask) {
  const Ids tokens = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  const std::vector<bool> mask = {false, true, true, false, false, true, false, false, true, true};
  SpanCorruption config;
  config.first_sentinel_id = 2099;
  const CorruptedExample ex = apply_noise_mask(tokens, mask, config);
  EXPECT_EQ(ex.input_ids, (Ids{10, 2099, 13, 14, 2098, 16, 17, 2097, 1}));
  EXPECT_EQ(ex.target_ids, (Ids{2099, 11, 12, 2098, 15, 2097, 18, 19, 1}));
}

TEST(PretrainSpanCorruption, CorruptSpansReconstructsAtManyLengths) {
  const SpanCorruption config;
  std::mt19937_64 rng(7);
  for (int64_t length = 2; length <= 600; length += 7) {
    const Ids tokens = iota_tokens(length);
    const CorruptedExample ex = corrupt_spans(tokens, config, rng);
    const NoiseCounts c = noise_counts(length, 0.15, 3.0);
    EXPECT_EQ(static_cast<int64_t>(ex.target_ids.size()), c.noise_tokens + c.noise_spans + 1);
    EXPECT_EQ(static_cast<int64_t>(ex.input_ids.size()),
              length - c.noise_tokens + c.noise_spans + 1);
    EXPECT_EQ(reconstruct(ex.input_ids, ex.target_ids), tokens) << "length " << length;
  }
}

TEST(PretrainSpanCorruption, SameSeedSameResultAndGolden) {
  const SpanCorruption config;
  std::mt19937_64 a(1234), b(1234), c(1235);
  const Ids tokens = iota_tokens(40);
  const CorruptedExample x = corrupt_spans(tokens, config, a);
  const CorruptedExample y = corrupt_spans(tokens, config, b);
  EXPECT_EQ(x.input_ids, y.input_ids);
  EXPECT_EQ(x.target_ids, y.target_ids);
  // mt19937_64's output is fixed by the standard and the draws are ours: this never changes.
  Ids input = iota_tokens(20);  // 100..119, <extra_id_0>, 122..135, <extra_id_1>, </s>
  input.push_back(32099);
  for (int64_t id = 122; id <= 135; ++id) input.push_back(id);
  input.insert(input.end(), {32098, 1});
  EXPECT_EQ(x.input_ids, input);
  EXPECT_EQ(x.target_ids, (Ids{32099, 120, 121, 32098, 136, 137, 138, 139, 1}));
  bool differs = false;
  for (int i = 0; i < 10 && !differs; ++i)
    differs = corrupt_spans(iota_tokens(200), config, c).input_ids !=
              corrupt_spans(iota_tokens(200), config, a).input_ids;
  EXPECT_TRUE(differs);
}

// Each composition of 5 noise tokens into 2 spans (1+4, 2+3, 3+2, 4+1) is equally likely.
TEST(PretrainSpanCorruption, SegmentationIsUniform) {
  std::mt19937_64 rng(99);
  std::map<int64_t, int> first_span;
  const int trials = 8000;
  for (int t = 0; t < trials; ++t) {
    // length 33, density 0.15 -> 5 noise tokens; mean 2.5 -> 2 spans.
    const std::vector<bool> mask = random_spans_noise_mask(33, 0.15, 2.5, rng);
    const std::vector<int64_t> runs = true_runs(mask);
    ASSERT_EQ(runs.size(), 2u);
    ++first_span[runs[0]];
  }
  ASSERT_EQ(first_span.size(), 4u);
  for (const auto& [length, count] : first_span)
    EXPECT_NEAR(count, trials / 4, trials / 4 * 0.1) << "first span of length " << length;
}

TEST(PretrainSpanCorruption, ExpandedLengthsMatchHuggingFace) {
  const ExpandedLengths l512 = expanded_lengths(512, 0.15, 3.0);
  EXPECT_EQ(l512.tokens_length, 568);  // run_t5_mlm_flax.py's numbers for max_seq_length 512
  EXPECT_EQ(l512.inputs_length, 512);
  EXPECT_EQ(l512.targets_length, 114);
  const ExpandedLengths l128 = expanded_lengths(128, 0.15, 3.0);
  EXPECT_EQ(l128.tokens_length, 141);
  EXPECT_EQ(l128.targets_length, 29);
  std::mt19937_64 rng(3);
  for (int64_t inputs = 10; inputs <= 1024; inputs += 5) {
    const ExpandedLengths l = expanded_lengths(inputs, 0.15, 3.0);
    EXPECT_EQ(l.inputs_length, inputs) << "inputs length " << inputs;
    const CorruptedExample ex = corrupt_spans(iota_tokens(l.tokens_length), SpanCorruption{}, rng);
    EXPECT_EQ(static_cast<int64_t>(ex.input_ids.size()), inputs);
    EXPECT_EQ(static_cast<int64_t>(ex.target_ids.size()), l.targets_length);
  }
}

TEST(PretrainSpanCorruption, PacksDocumentsWithEos) {
  const std::vector<Ids> docs = {{5, 6, 7}, {}, {8, 9}, {10, 11, 12, 13}};
  // Stream: 5 6 7 1 1 8 9 1 10 11 12 13 1 (13 ids).
  EXPECT_EQ(pack_token_stream(docs, 4),
            (std::vector<Ids>{{5, 6, 7, 1}, {1, 8, 9, 1}, {10, 11, 12, 13}}));
  EXPECT_EQ(pack_token_stream(docs, 5, 1, /*keep_tail=*/true),
            (std::vector<Ids>{{5, 6, 7, 1, 1}, {8, 9, 1, 10, 11}, {12, 13, 1}}));
  EXPECT_EQ(pack_token_stream(docs, 6, -1), (std::vector<Ids>{{5, 6, 7, 8, 9, 10}}));
  EXPECT_TRUE(pack_token_stream({{1, 2}}, 10).empty());
}

TEST(PretrainSpanCorruption, RejectsBadInput) {
  std::mt19937_64 rng(0);
  EXPECT_THROW(corrupt_spans({5}, SpanCorruption{}, rng), Error);
  EXPECT_THROW(random_spans_noise_mask(10, 0.0, 3.0, rng), Error);
  EXPECT_THROW(random_spans_noise_mask(10, 0.15, 0.0, rng), Error);
  SpanCorruption few;
  few.sentinel_count = 3;
  EXPECT_THROW(corrupt_spans(iota_tokens(200), few, rng), Error);  // needs 10 spans
  EXPECT_THROW(apply_noise_mask({1, 2}, {true}, SpanCorruption{}), Error);
  EXPECT_THROW(pack_token_stream({{1, 2}}, 1), Error);
}

// The sentinels each tokenizer's pretraining uses, against hand-computed examples. ByT5: the
// example of transformers' ByT5 documentation ("The dog chases a ball in the park." with
// "chases" and " in the" masked: input_ids[:8] + [258] + input_ids[14:21] + [257] +
// input_ids[28:], printed there as the ids below); the target is the masked bytes + 3 after
// their sentinels, written out by hand.
TEST(PretrainSpanCorruption, ByteLevelSentinelsCountDownFrom258) {
  const T5Tokenizer bytes = T5Tokenizer::byte_level();
  SpanCorruption config;
  use_sentinels_of(bytes, config);
  EXPECT_EQ(config.first_sentinel_id, 258);
  EXPECT_EQ(config.sentinel_count, 11);
  EXPECT_EQ(config.eos_id, 1);
  const Ids tokens = bytes.encode("The dog chases a ball in the park.", -1, /*add_eos=*/false);
  ASSERT_EQ(tokens.size(), 34u);
  std::vector<bool> mask(tokens.size(), false);
  for (size_t i = 8; i < 14; ++i) mask[i] = true;   // "chases"
  for (size_t i = 21; i < 28; ++i) mask[i] = true;  // " in the"
  const CorruptedExample ex = apply_noise_mask(tokens, mask, config);
  EXPECT_EQ(ex.input_ids, (Ids{87,  107, 104, 35,  103, 114, 106, 35,  258, 35,  100, 35,
                               101, 100, 111, 111, 257, 35,  115, 100, 117, 110, 49,  1}));
  // 'c' 'h' 'a' 's' 'e' 's' = 99 104 97 115 101 115; ' ' 'i' 'n' ' ' 't' 'h' 'e' = 32 105 110 32
  // 116 104 101; each + 3.
  EXPECT_EQ(ex.target_ids,
            (Ids{258, 102, 107, 100, 118, 104, 118, 257, 35, 108, 113, 35, 119, 107, 104, 1}));
  // The sentinels are the bytes 0xFF, 0xFE: not the tokenizer's <extra_id_0> (259).
  EXPECT_EQ(bytes.sentinel_id(0), 259);
  EXPECT_EQ(258 - 3, 0xFF);
  // Eleven spans at most (bytes 0xF5..0xFF); a twelfth is refused.
  std::vector<bool> twelve(24, false);
  for (size_t i = 1; i < twelve.size(); i += 2) twelve[i] = true;
  EXPECT_THROW(apply_noise_mask(Ids(24, 100), twelve, config), Error);
}

TEST(PretrainSpanCorruption, SentencePieceSentinelsAreExtraIdsCountingDown) {
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const T5Tokenizer t5 =
      T5Tokenizer::load(::compacter::testing::shared_path("data/t5-tokenizer/spiece.model"));
  SpanCorruption config;
  config.first_sentinel_id = 7;  // overwritten
  use_sentinels_of(t5, config);
  EXPECT_EQ(config.first_sentinel_id, 32099);  // T5: vocab_size 32100 - 1
  EXPECT_EQ(config.sentinel_count, 100);
  const Ids tokens = {10, 11, 12, 13, 14, 15};
  const std::vector<bool> mask = {false, true, false, false, true, true};
  const CorruptedExample ex = apply_noise_mask(tokens, mask, config);
  EXPECT_EQ(ex.input_ids, (Ids{10, 32099, 12, 13, 32098, 1}));
  EXPECT_EQ(ex.target_ids, (Ids{32099, 11, 32098, 14, 15, 1}));
  // They are the tokenizer's own <extra_id_0>, <extra_id_1>.
  EXPECT_EQ(t5.encode("<extra_id_0><extra_id_1>", -1, false), (Ids{32099, 32098}));
}

// A byte of 0xF5..0xFF (never UTF-8) in a text file would look like a ByT5 sentinel: refused,
// naming the file and line; the SentencePiece path is not affected.
TEST(PretrainSpanCorruption, ByteLevelCorpusRefusesSentinelBytes) {
  ::compacter::testing::TempDir dir;
  const std::string path = dir.file("corpus.txt");
  ::compacter::testing::write_file(path, "fine text\nbad \xfe byte\n");
  CorpusStats stats;
  try {
    pack_text_files({path}, T5Tokenizer::byte_level(), 16, 0.15, 3.0, stats);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(path + ": line 2: byte 0xfe"), std::string::npos) << m;
  }
  ::compacter::testing::write_file(path, std::string(200, 'a') + "\n");
  const auto chunks = pack_text_files({path}, T5Tokenizer::byte_level(), 16, 0.15, 3.0, stats);
  ASSERT_FALSE(chunks.empty());
  EXPECT_EQ(chunks[0][0], 'a' + 3);
}

}  // namespace
}  // namespace compacter::pretrain

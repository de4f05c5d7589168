// Tests of train_sentencepiece (data/sentencepiece.h) on a small generated corpus: T5's special
// ids, sentinels of a small vocabulary through T5Tokenizer, encode/decode round trips, identical
// models from identical input, atomic output, errors naming the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/data/sentencepiece.h"
#include "compacter/data/tokenizer.h"
#include "compacter/pretrain/span_corruption.h"
#include "support/test_support.h"

namespace compacter {
namespace {

using ::compacter::testing::read_file;
using ::compacter::testing::TempDir;
using ::compacter::testing::write_file;

// 300 lines of words built from 25 syllables: enough distinct substrings for 300 pieces.
std::vector<std::string> corpus_lines() {
  static const char* const kSyllables[] = {"ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de",
                                           "fu", "ga", "he", "ji", "wo", "ba", "ce", "zu", "xi",
                                           "ly", "qu", "an", "or", "el", "st", "th"};
  std::mt19937_64 rng(5);
  std::vector<std::string> lines;
  for (int i = 0; i < 300; ++i) {
    std::string line;
    const size_t words = 6 + rng() % 10;
    for (size_t w = 0; w < words; ++w) {
      if (w) line += ' ';
      for (size_t k = 0, n = 1 + rng() % 3; k < n; ++k) line += kSyllables[rng() % 25];
    }
    lines.push_back(line);
  }
  return lines;
}

std::string write_corpus(const TempDir& dir) {
  std::string text;
  for (const std::string& line : corpus_lines()) text += line + "\n";
  write_file(dir.file("corpus.txt"), text);
  return dir.file("corpus.txt");
}

SentencePieceTrainOptions small_options() {
  SentencePieceTrainOptions o;
  o.vocab_size = 300;
  return o;
}

TEST(PretrainSentencePiece, TrainsT5LayoutThatRoundTrips) {
  TempDir dir;
  const std::string corpus = write_corpus(dir);
  const std::string model = dir.file("spiece.model");
  const int64_t pieces = train_sentencepiece({corpus}, model, small_options());
  EXPECT_EQ(pieces, 300);
  // Only the model: no temporary file or .vocab is left behind.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ++files;
    (void)entry;
  }
  EXPECT_EQ(files, 2);

  const auto sp = SentencePiece::load(model);
  EXPECT_EQ(sp->piece_size(), 300);
  EXPECT_EQ(sp->id_to_piece(0), "<pad>");
  EXPECT_EQ(sp->id_to_piece(1), "</s>");
  EXPECT_EQ(sp->id_to_piece(2), "<unk>");
  EXPECT_EQ(sp->piece_to_id("<s>"), 2) << "no <s> piece (unknown -> unk id)";

  const T5Tokenizer tok = T5Tokenizer::load(model);
  EXPECT_EQ(tok.piece_count(), 300);
  EXPECT_EQ(tok.vocab_size(), 400);
  EXPECT_EQ(tok.sentinel_id(0), 399);
  EXPECT_EQ(tok.sentinel_id(99), 300);
  EXPECT_EQ(tok.encode("<extra_id_0>", -1, false), (std::vector<int64_t>{399}));
  for (const std::string& line : corpus_lines()) {
    const std::vector<int64_t> ids = tok.encode(line);
    ASSERT_EQ(ids.back(), 1);
    for (int64_t id : ids) ASSERT_NE(id, 2) << "no <unk> in text from the training corpus";
    ASSERT_EQ(tok.decode(ids), line);
  }

  // A corrupted example decodes with the sentinels of the small vocabulary.
  std::vector<int64_t> ids = tok.encode(corpus_lines()[0], -1, false);
  pretrain::SpanCorruption config;
  config.first_sentinel_id = tok.sentinel_id(0);
  std::mt19937_64 rng(1);
  const pretrain::CorruptedExample ex = pretrain::corrupt_spans(ids, config, rng);
  EXPECT_NE(tok.decode(ex.input_ids, false).find("<extra_id_0>"), std::string::npos);
  EXPECT_EQ(
      tok.decode(std::vector<int64_t>(ex.target_ids.begin(), ex.target_ids.begin() + 1), false),
      "<extra_id_0>");
}

TEST(PretrainSentencePiece, SameInputSameModel) {
  TempDir dir;
  const std::string corpus = write_corpus(dir);
  SentencePieceTrainOptions o = small_options();
  o.input_sentence_size = 200;  // with sampling too
  train_sentencepiece({corpus}, dir.file("a.model"), o);
  train_sentencepiece({corpus}, dir.file("b.model"), o);
  EXPECT_TRUE(read_file(dir.file("a.model")) == read_file(dir.file("b.model")));
  o.num_threads = 2;
  train_sentencepiece({corpus}, dir.file("c.model"), o);
  train_sentencepiece({corpus}, dir.file("d.model"), o);
  EXPECT_TRUE(read_file(dir.file("c.model")) == read_file(dir.file("d.model")));
}

TEST(PretrainSentencePiece, SmallCorpusGivesFewerPiecesUnlessHardLimit) {
  TempDir dir;
  write_file(dir.file("tiny.txt"), "a cat\na dog\n");
  SentencePieceTrainOptions o;
  o.vocab_size = 500;
  const int64_t pieces = train_sentencepiece({dir.file("tiny.txt")}, dir.file("m.model"), o);
  EXPECT_GT(pieces, 3);
  EXPECT_LT(pieces, 500);
  o.hard_vocab_limit = true;
  EXPECT_THROW(train_sentencepiece({dir.file("tiny.txt")}, dir.file("n.model"), o), Error);
  EXPECT_FALSE(std::filesystem::exists(dir.file("n.model")));
}

TEST(PretrainSentencePiece, ErrorsNameTheProblem) {
  TempDir dir;
  try {
    train_sentencepiece({dir.file("missing.txt")}, dir.file("m.model"), small_options());
    FAIL() << "no error for a missing input";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.txt"), std::string::npos) << e.what();
  }
  write_file(dir.file("empty.txt"), "");
  EXPECT_THROW(train_sentencepiece({dir.file("empty.txt")}, dir.file("m.model"), small_options()),
               Error);
  EXPECT_THROW(train_sentencepiece({}, dir.file("m.model"), small_options()), Error);
  EXPECT_FALSE(std::filesystem::exists(dir.file("m.model")));
}

}  // namespace
}  // namespace compacter

// Tests of T5Tokenizer (data/tokenizer.h) against the real T5 spiece.model: the README's ids,
// GLUE sentences against the spm_encode / spm_normalize tools and SentencePiece itself,
// sentinels, decoding, truncation, load errors, and the tokenize / detokenize commands.
#include "compacter/data/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/data/sentencepiece.h"
#include "support/test_support.h"

namespace compacter {
namespace {

using ::compacter::testing::run_compacter;
using ::compacter::testing::shared_path;
using Ids = std::vector<int64_t>;

constexpr const char* kModel = "data/t5-tokenizer/spiece.model";

const T5Tokenizer& t5() {
  static const T5Tokenizer tokenizer = T5Tokenizer::load(shared_path(kModel));
  return tokenizer;
}

// SentencePiece ids of `text` (no </s>), straight from the SentencePiece library.
Ids sp_ids(const std::string& text) {
  static const auto sp = SentencePiece::load(shared_path(kModel));
  std::vector<int> ids = sp->encode(text);
  return Ids(ids.begin(), ids.end());
}

Ids concat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const Ids& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Ids parse_ids(const std::string& line) {
  Ids ids;
  std::istringstream in(line);
  for (int64_t id; in >> id;) ids.push_back(id);
  return ids;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Column `column` of the first `rows` data rows of a GLUE TSV file.
std::vector<std::string> tsv_column(const std::string& relative, size_t column, bool header,
                                    size_t rows) {
  std::ifstream in(shared_path(relative));
  std::vector<std::string> out;
  std::string line;
  if (header) std::getline(in, line);
  while (out.size() < rows && std::getline(in, line)) {
    std::vector<std::string> fields;
    std::istringstream row(line);
    for (std::string field; std::getline(row, field, '\t');) fields.push_back(field);
    if (column < fields.size() && !fields[column].empty()) out.push_back(fields[column]);
  }
  return out;
}

// 200 sentences from each of four GLUE dev sets.
std::vector<std::string> glue_sentences() {
  std::vector<std::string> all;
  for (auto part : {tsv_column("data/glue/SST-2/dev.tsv", 0, true, 200),
                    tsv_column("data/glue/RTE/dev.tsv", 1, true, 200),
                    tsv_column("data/glue/CoLA/dev.tsv", 3, false, 200),
                    tsv_column("data/glue/STS-B/dev.tsv", 7, true, 200)})
    all.insert(all.end(), part.begin(), part.end());
  return all;
}

bool have_tool(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

// Output lines of a SentencePiece command-line tool run on `lines` (one input line each).
std::vector<std::string> run_spm_tool(const std::string& tool, const std::string& flags,
                                      const std::vector<std::string>& lines) {
  testing::TempDir tmp;
  std::string input;
  for (const std::string& l : lines) input += l + "\n";
  testing::write_file(tmp.file("in.txt"), input);
  const std::string cmd = tool + " --model='" + shared_path(kModel) + "' " + flags + " --input='" +
                          tmp.file("in.txt") + "' --output='" + tmp.file("out.txt") +
                          "' 2>/dev/null";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return split_lines(testing::read_file(tmp.file("out.txt")));
}

std::string quoted(const std::string& s) {
  return "'" + s + "'";
}

std::string model_arg() {
  return "--tokenizer " + quoted(shared_path(kModel));
}

TEST(TokenizerReadme, KnownIds) {
  REQUIRE_SHARED(kModel);
  EXPECT_EQ(t5().encode("translate English to German: The house is wonderful."),
            (Ids{13959, 1566, 12, 2968, 10, 37, 629, 19, 1627, 5, 1}));
  EXPECT_EQ(t5().encode("Hello world"), (Ids{8774, 296, 1}));
  EXPECT_EQ(t5().encode("Hello world", -1, false), (Ids{8774, 296}));
  EXPECT_EQ(t5().encode(""), (Ids{1}));
  EXPECT_EQ(t5().encode("   "), (Ids{1}));
}

TEST(TokenizerVocab, SizesAndPieces) {
  REQUIRE_SHARED(kModel);
  EXPECT_EQ(t5().piece_count(), 32000);
  EXPECT_EQ(t5().vocab_size(), 32100);
  EXPECT_EQ(t5().sentinel_id(0), 32099);
  EXPECT_EQ(t5().sentinel_id(99), 32000);
  EXPECT_THROW(t5().sentinel_id(100), Error);
  EXPECT_EQ(t5().id_to_piece(0), "<pad>");
  EXPECT_EQ(t5().id_to_piece(1), "</s>");
  EXPECT_EQ(t5().id_to_piece(2), "<unk>");
  EXPECT_EQ(t5().id_to_piece(8774), "\xE2\x96\x81Hello");
  EXPECT_EQ(t5().id_to_piece(32099), "<extra_id_0>");
  EXPECT_EQ(t5().id_to_piece(32000), "<extra_id_99>");
  EXPECT_THROW(t5().id_to_piece(32100), Error);
  EXPECT_TRUE(t5().is_special(0));
  EXPECT_TRUE(t5().is_special(2));
  EXPECT_TRUE(t5().is_special(32000));
  EXPECT_FALSE(t5().is_special(3));
  EXPECT_FALSE(t5().is_special(31999));
}

TEST(TokenizerGlue, MatchesSpmEncodeTool) {
  REQUIRE_SHARED(kModel);
  REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
  if (!have_tool("spm_encode")) GTEST_SKIP() << "spm_encode is not installed";
  const std::vector<std::string> sentences = glue_sentences();
  ASSERT_EQ(sentences.size(), 800u);
  const std::vector<std::string> reference =
      run_spm_tool("spm_encode", "--output_format=id", sentences);
  ASSERT_EQ(reference.size(), sentences.size());
  for (size_t i = 0; i < sentences.size(); ++i) {
    Ids expected = parse_ids(reference[i]);
    expected.push_back(1);
    ASSERT_EQ(t5().encode(sentences[i]), expected) << "sentence " << i << ": " << sentences[i];
  }
}

TEST(TokenizerGlue, MatchesSentencePieceLibrary) {
  REQUIRE_SHARED(kModel);
  REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
  for (const std::string& s : glue_sentences())
    ASSERT_EQ(t5().encode(s), concat({sp_ids(s), {1}})) << s;
}

TEST(TokenizerGlue, DecodeRoundTripsToNormalisedText) {
  REQUIRE_SHARED(kModel);
  REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
  if (!have_tool("spm_normalize")) GTEST_SKIP() << "spm_normalize is not installed";
  const std::vector<std::string> sentences = glue_sentences();
  const std::vector<std::string> normalised = run_spm_tool("spm_normalize", "", sentences);
  ASSERT_EQ(normalised.size(), sentences.size());
  size_t checked = 0;
  for (size_t i = 0; i < sentences.size(); ++i) {
    const Ids ids = t5().encode(sentences[i]);
    // Characters outside the vocabulary become <unk>, which decoding skips like HF.
    if (std::find(ids.begin(), ids.end(), t5().unk_id()) != ids.end()) continue;
    ASSERT_EQ(t5().decode(ids), normalised[i]) << sentences[i];
    ++checked;
  }
  EXPECT_GT(checked, 700u);
}

TEST(TokenizerSentinels, SingleTokens) {
  REQUIRE_SHARED(kModel);
  EXPECT_EQ(t5().encode("<extra_id_0>"), (Ids{32099, 1}));
  EXPECT_EQ(t5().encode("<extra_id_99>"), (Ids{32000, 1}));
  EXPECT_EQ(t5().encode("<extra_id_0><extra_id_1>"), (Ids{32099, 32098, 1}));
  // Not sentinels of a 100-sentinel vocabulary: plain text.
  EXPECT_EQ(t5().encode("<extra_id_100>"), concat({sp_ids("<extra_id_100>"), {1}}));
  EXPECT_EQ(t5().encode("<extra_id_05>"), concat({sp_ids("<extra_id_05>"), {1}}));
  EXPECT_EQ(t5().encode("<extra_id_>"), concat({sp_ids("<extra_id_>"), {1}}));
}

TEST(TokenizerSentinels, MixedWithText) {
  REQUIRE_SHARED(kModel);
  const Ids expected =
      concat({sp_ids("The"), {32099}, sp_ids("walks in"), {32098}, sp_ids("park"), {1}});
  EXPECT_EQ(t5().encode("The <extra_id_0> walks in <extra_id_1> park"), expected);
  // Whitespace next to special tokens is stripped (any Unicode space, like Python's strip).
  EXPECT_EQ(t5().encode("The<extra_id_0>walks in<extra_id_1>park"), expected);
  EXPECT_EQ(t5().encode("The \t<extra_id_0>\xE3\x80\x80 walks in  <extra_id_1>\npark"), expected);
  // Text glued to a sentinel is encoded on its own (legacy behaviour: "b" gets a word start).
  EXPECT_EQ(t5().encode("a<extra_id_0>b"), concat({sp_ids("a"), {32099}, sp_ids("b"), {1}}));
}

TEST(TokenizerSentinels, NamedSpecialTokensInText) {
  REQUIRE_SHARED(kModel);
  EXPECT_EQ(t5().encode("<pad> Hello"), (Ids{0, 8774, 1}));
  EXPECT_EQ(t5().encode("Hello <unk> world"), (Ids{8774, 2, 296, 1}));
  EXPECT_EQ(t5().encode("Hello </s> world"), (Ids{8774, 1, 296, 1}));
  // HF does not add a second </s> when the text already ends with one.
  EXPECT_EQ(t5().encode("Hello world</s>"), (Ids{8774, 296, 1}));
  EXPECT_EQ(t5().encode("Hello world </s>", -1, false), (Ids{8774, 296, 1}));
}

TEST(TokenizerDecode, SkipsOrShowsSpecialTokens) {
  REQUIRE_SHARED(kModel);
  EXPECT_EQ(t5().decode({8774, 296, 1}), "Hello world");
  EXPECT_EQ(t5().decode({0, 8774, 296, 1, 0, 0}), "Hello world");
  EXPECT_EQ(t5().decode({8774, 296, 1}, false), "Hello world</s>");
  EXPECT_EQ(t5().decode({}), "");
  // The T5 docs' span-corruption output, rendered like T5Tokenizer.convert_tokens_to_string.
  const Ids ids = concat(
      {{0, 32099}, sp_ids("park offers"), {32098}, sp_ids("the"), {32097}, sp_ids("park."), {1}});
  EXPECT_EQ(t5().decode(ids, false),
            "<pad><extra_id_0> park offers<extra_id_1> the<extra_id_2> park.</s>");
  EXPECT_EQ(t5().decode(ids), "park offers the park.");
  EXPECT_EQ(t5().decode({8774, 2, 296}, false), "Hello<unk>world");
  EXPECT_EQ(t5().decode({8774, 2, 296}), "Hello world");
}

TEST(TokenizerDecode, RejectsIdsOutsideVocabulary) {
  REQUIRE_SHARED(kModel);
  for (int64_t bad : {int64_t{32100}, int64_t{-1}, int64_t{1} << 40}) {
    try {
      t5().decode({8774, bad});
      FAIL() << "no error for id " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(bad)), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("position 1"), std::string::npos) << e.what();
    }
  }
}

TEST(TokenizerDecode, CleanUpTokenizationLikeHf) {
  EXPECT_EQ(clean_up_tokenization("it 's a charming journey , is n't it ? yes !"),
            "it's a charming journey, isn't it? yes!");
  EXPECT_EQ(clean_up_tokenization("we 're here , they 've gone . i 'm ' ok ' "),
            "we're here, they've gone. i'm'ok'");
  EXPECT_EQ(clean_up_tokenization("plain"), "plain");
}

TEST(TokenizerTruncation, KeepsEos) {
  REQUIRE_SHARED(kModel);
  const std::string text = "translate English to German: The house is wonderful.";
  const Ids full = t5().encode(text);
  ASSERT_EQ(full.size(), 11u);
  EXPECT_EQ(t5().encode(text, 5), (Ids{13959, 1566, 12, 2968, 1}));
  EXPECT_EQ(t5().encode(text, 1), (Ids{1}));
  EXPECT_EQ(t5().encode(text, 11), full);
  EXPECT_EQ(t5().encode(text, 100), full);
  EXPECT_EQ(t5().encode(text, 0), full);
  EXPECT_EQ(t5().encode(text, 3, false), (Ids{13959, 1566, 12}));
  EXPECT_EQ(t5().encode("Hello world</s>", 2), (Ids{8774, 1}));
}

void expect_load_error(const std::string& path, const std::string& also) {
  try {
    T5Tokenizer::load(path);
    FAIL() << "no error for " << path;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(also), std::string::npos) << msg;
  }
}

TEST(TokenizerLoad, MissingOrCorruptFile) {
  testing::TempDir tmp;
  expect_load_error(tmp.file("nope.model"), "no such file");
  expect_load_error(tmp.path(), "not a regular file");
  testing::write_file(tmp.file("garbage.model"), "this is not a sentencepiece model\n\x01\x02\xff");
  expect_load_error(tmp.file("garbage.model"), "SentencePiece");
  testing::write_file(tmp.file("empty.model"), "");
  expect_load_error(tmp.file("empty.model"), "SentencePiece");
}

TEST(TokenizerLoad, MovesKeepWorking) {
  REQUIRE_SHARED(kModel);
  T5Tokenizer a = T5Tokenizer::load(shared_path(kModel));
  T5Tokenizer b = std::move(a);
  EXPECT_EQ(b.encode("Hello world"), (Ids{8774, 296, 1}));
  T5Tokenizer c = T5Tokenizer::load(shared_path(kModel), 10);
  EXPECT_EQ(c.vocab_size(), 32010);
  EXPECT_EQ(c.encode("<extra_id_9> <extra_id_10>"),
            concat({{32000}, sp_ids("<extra_id_10>"), {1}}));
  c = std::move(b);
  EXPECT_EQ(c.vocab_size(), 32100);
}

TEST(TokenizerCli, TokenizeTextsAndStdin) {
  REQUIRE_SHARED(kModel);
  auto r = run_compacter("tokenize " + model_arg() +
                         " --text 'translate English to German: The house is wonderful.'"
                         " --text 'Hello world'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "13959 1566 12 2968 10 37 629 19 1627 5 1\n8774 296 1\n");

  r = run_compacter("tokenize " + model_arg(), "Hello world\r\n\n<extra_id_0> world\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "8774 296 1\n1\n32099 296 1\n");

  r = run_compacter("tokenize " + model_arg() + " --max-length 3 --no-eos",
                    "translate English to German: The house is wonderful.\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "13959 1566 12\n");

  r = run_compacter("tokenize " + model_arg() + " --max-length 3",
                    "translate English to German: The house is wonderful.\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "13959 1566 1\n");
}

TEST(TokenizerCli, DetokenizeIdsAndStdin) {
  REQUIRE_SHARED(kModel);
  auto r = run_compacter("detokenize " + model_arg() + " --ids '8774 296 1'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello world\n");

  r = run_compacter("detokenize " + model_arg() + " --keep-special",
                    "0 8774 296 1\n\n32099 296\t1\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<pad> Hello world</s>\n\n<extra_id_0> world</s>\n");

  const std::string ids = [] {
    std::string s;
    for (int64_t id : t5().encode("it 's a charming journey . ")) s += std::to_string(id) + " ";
    return s;
  }();
  r = run_compacter("detokenize " + model_arg() + " --clean-up", ids + "\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "it's a charming journey.\n");
}

TEST(TokenizerCli, Errors) {
  REQUIRE_SHARED(kModel);
  auto r = run_compacter("detokenize " + model_arg(), "8774 296 1\n8774 x7 1\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("compacter: error: line 2: bad token 'x7'"), std::string::npos) << r.err;

  r = run_compacter("detokenize " + model_arg() + " --ids '1 2' --ids '5 99999'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--ids value 2: token id 99999 is outside"), std::string::npos) << r.err;

  testing::TempDir tmp;
  r = run_compacter("tokenize --tokenizer " + quoted(tmp.file("missing.model")) + " --text hi");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(tmp.file("missing.model")), std::string::npos) << r.err;

  r = run_compacter("tokenize --text hi");  // --tokenizer is required
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.exit_code, 1);

  r = run_compacter("tokenize " + model_arg() + " --max-length 0 --text hi");
  EXPECT_NE(r.exit_code, 0);
}

TEST(TokenizerCli, Help) {
  auto r = run_compacter("tokenize --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--max-length"), std::string::npos) << r.out;
  r = run_compacter("detokenize --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--keep-special"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace compacter

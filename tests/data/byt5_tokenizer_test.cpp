// Tests of the byte-level (ByT5) backend of T5Tokenizer (data/tokenizer.h) against the definition
// of transformers' ByT5Tokenizer (~4.30): ids are UTF-8 bytes + 3 after pad 0, eos 1, unk 2;
// <extra_id_k> = 259 + k (125 of them, vocabulary 384); </s> appended once; <pad>, </s>, <unk> in
// the text are single tokens keeping the whitespace around them, sentinels strip it; decoding
// drops invalid UTF-8 (errors="ignore"). Every expected id below is computed by hand from the
// byte values (e.g. 'H' = 0x48 = 72 -> 75).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/data/tokenizer.h"
#include "support/test_support.h"

namespace compacter {
namespace {

using Ids = std::vector<int64_t>;
using ::compacter::testing::run_compacter;

const T5Tokenizer& byt5() {
  static const T5Tokenizer tokenizer = T5Tokenizer::byte_level();
  return tokenizer;
}

TEST(ByT5Tokenizer, Sizes) {
  EXPECT_TRUE(byt5().is_byte_level());
  EXPECT_EQ(byt5().vocab_size(), 384);  // 3 + 256 + 125, google/byt5-*'s vocab_size
  EXPECT_EQ(byt5().piece_count(), 259);
  EXPECT_EQ(byt5().pad_id(), 0);
  EXPECT_EQ(byt5().eos_id(), 1);
  EXPECT_EQ(byt5().unk_id(), 2);
  EXPECT_EQ(byt5().sentinel_id(0), 259);
  EXPECT_EQ(byt5().sentinel_id(1), 260);
  EXPECT_EQ(byt5().sentinel_id(124), 383);
  EXPECT_THROW(byt5().sentinel_id(125), Error);
  EXPECT_EQ(byt5().id_to_piece(0), "<pad>");
  EXPECT_EQ(byt5().id_to_piece(1), "</s>");
  EXPECT_EQ(byt5().id_to_piece(2), "<unk>");
  EXPECT_EQ(byt5().id_to_piece(3), std::string(1, '\0'));
  EXPECT_EQ(byt5().id_to_piece(75), "H");
  EXPECT_EQ(byt5().id_to_piece(258), "\xFF");
  EXPECT_EQ(byt5().id_to_piece(259), "<extra_id_0>");
  EXPECT_EQ(byt5().id_to_piece(383), "<extra_id_124>");
  EXPECT_THROW(byt5().id_to_piece(384), Error);
  for (int64_t id : {0, 1, 2, 259, 300, 383}) EXPECT_TRUE(byt5().is_special(id)) << id;
  for (int64_t id : {3, 100, 258}) EXPECT_FALSE(byt5().is_special(id)) << id;
}

TEST(ByT5Tokenizer, AsciiIsBytesPlusThree) {
  // H 72, e 101, l 108, l 108, o 111 -> +3; then </s>.
  EXPECT_EQ(byt5().encode("Hello"), (Ids{75, 104, 111, 111, 114, 1}));
  EXPECT_EQ(byt5().encode("Hello", -1, false), (Ids{75, 104, 111, 111, 114}));
  // ' ' 32 -> 35, '!' 33 -> 36; whitespace is kept as it is.
  EXPECT_EQ(byt5().encode(" a  b!"), (Ids{35, 100, 35, 35, 101, 36, 1}));
  EXPECT_EQ(byt5().encode("\t\n"), (Ids{12, 13, 1}));
  EXPECT_EQ(byt5().encode(""), (Ids{1}));
  // NUL is byte 0 -> id 3.
  EXPECT_EQ(byt5().encode(std::string("a\0b", 3)), (Ids{100, 3, 101, 1}));
}

TEST(ByT5Tokenizer, MultiByteUtf8) {
  // é U+00E9 = C3 A9 (195, 169); € U+20AC = E2 82 AC (226, 130, 172);
  // 😀 U+1F600 = F0 9F 98 80 (240, 159, 152, 128).
  EXPECT_EQ(byt5().encode("\xC3\xA9"), (Ids{198, 172, 1}));
  EXPECT_EQ(byt5().encode("\xE2\x82\xAC"), (Ids{229, 133, 175, 1}));
  EXPECT_EQ(byt5().encode("\xF0\x9F\x98\x80"), (Ids{243, 162, 155, 131, 1}));
  EXPECT_EQ(byt5().encode("caf\xC3\xA9"), (Ids{102, 100, 105, 198, 172, 1}));
  // Bytes are bytes: an invalid sequence in the input is encoded byte by byte too.
  EXPECT_EQ(byt5().encode("\xFF\x80"), (Ids{258, 131, 1}));
}

TEST(ByT5Tokenizer, SentinelsAreSingleTokensThatStripWhitespace) {
  EXPECT_EQ(byt5().encode("<extra_id_0>"), (Ids{259, 1}));
  EXPECT_EQ(byt5().encode("<extra_id_124>"), (Ids{383, 1}));
  // Plain-string special tokens eat the whitespace on both sides.
  EXPECT_EQ(byt5().encode("a <extra_id_0> b"), (Ids{100, 259, 101, 1}));
  EXPECT_EQ(byt5().encode("a<extra_id_1>  <extra_id_2>b"), (Ids{100, 260, 261, 101, 1}));
  // Not a sentinel: past the 125, or not canonical decimal -> plain bytes.
  // < 60, e 101, x 120, t 116, r 114, a 97, _ 95, i 105, d 100, 1 49, 2 50, 5 53, > 62, 0 48.
  EXPECT_EQ(byt5().encode("<extra_id_125>"),
            (Ids{63, 104, 123, 119, 117, 100, 98, 108, 103, 98, 52, 53, 56, 65, 1}));
  EXPECT_EQ(byt5().encode("<extra_id_01>"),
            (Ids{63, 104, 123, 119, 117, 100, 98, 108, 103, 98, 51, 52, 65, 1}));
}

TEST(ByT5Tokenizer, NamedSpecialsKeepWhitespaceAndEosIsNotDoubled) {
  // <pad>, </s> and <unk> are AddedTokens with lstrip = rstrip = false.
  EXPECT_EQ(byt5().encode("a </s> b"), (Ids{100, 35, 1, 35, 101, 1}));
  EXPECT_EQ(byt5().encode("<pad>x<unk>"), (Ids{0, 123, 2, 1}));
  EXPECT_EQ(byt5().encode("a</s>"), (Ids{100, 1}));  // ends with </s>: not added again
  EXPECT_EQ(byt5().encode("a </s>"), (Ids{100, 35, 1}));
}

TEST(ByT5Tokenizer, TruncationKeepsEos) {
  EXPECT_EQ(byt5().encode("abcdef", 4), (Ids{100, 101, 102, 1}));
  EXPECT_EQ(byt5().encode("abcdef", 3, false), (Ids{100, 101, 102}));
  EXPECT_EQ(byt5().encode("ab", 10), (Ids{100, 101, 1}));
  // Truncation may cut a multi-byte character: ids are bytes.
  EXPECT_EQ(byt5().encode("\xE2\x82\xAC", 3), (Ids{229, 133, 1}));
}

TEST(ByT5Tokenizer, DecodeSkipsOrKeepsSpecials) {
  EXPECT_EQ(byt5().decode({75, 104, 111, 111, 114, 1}), "Hello");
  EXPECT_EQ(byt5().decode({75, 104, 111, 111, 114, 1}, false), "Hello</s>");
  EXPECT_EQ(byt5().decode({0, 100, 259, 101, 2, 383}), "ab");
  EXPECT_EQ(byt5().decode({0, 100, 259, 101, 2, 383}, false),
            "<pad>a<extra_id_0>b<unk><extra_id_124>");
  EXPECT_EQ(byt5().decode({35, 100, 35}), " a ");  // no stripping
  EXPECT_EQ(byt5().decode({}), "");
  EXPECT_THROW(byt5().decode({384}), Error);
  EXPECT_THROW(byt5().decode({-1}), Error);
  const std::string text =
      "Gr\xC3\xBC\xC3\x9F"
      "e \xE2\x82\xAC 5 \xF0\x9F\x98\x80 <x>";
  EXPECT_EQ(byt5().decode(byt5().encode(text)), text);
}

TEST(ByT5Tokenizer, DecodeDropsInvalidUtf8) {
  auto ids = [](std::initializer_list<int> bytes) {
    Ids out;
    for (int b : bytes) out.push_back(b + 3);
    return out;
  };
  EXPECT_EQ(byt5().decode(ids({0xE2, 0x82, 'a'})), "a");              // truncated sequence
  EXPECT_EQ(byt5().decode(ids({0xC3})), "");                          // lead byte at the end
  EXPECT_EQ(byt5().decode(ids({0x80, 'b', 0xBF})), "b");              // lone continuations
  EXPECT_EQ(byt5().decode(ids({0xC0, 0xAF, 0xC1, 0xBF})), "");        // overlong 2-byte
  EXPECT_EQ(byt5().decode(ids({0xE0, 0x80, 0x80})), "");              // overlong 3-byte
  EXPECT_EQ(byt5().decode(ids({0xF0, 0x8F, 0xBF, 0xBF})), "");        // overlong 4-byte
  EXPECT_EQ(byt5().decode(ids({0xED, 0xA0, 0x80})), "");              // surrogate U+D800
  EXPECT_EQ(byt5().decode(ids({0xF4, 0x90, 0x80, 0x80})), "");        // above U+10FFFF
  EXPECT_EQ(byt5().decode(ids({0xF5, 0xFE, 0xFF})), "");              // never valid
  EXPECT_EQ(byt5().decode(ids({0xED, 0x9F, 0xBF})), "\xED\x9F\xBF");  // U+D7FF is fine
  EXPECT_EQ(byt5().decode(ids({0xF4, 0x8F, 0xBF, 0xBF})), "\xF4\x8F\xBF\xBF");  // U+10FFFF
  EXPECT_EQ(byt5().decode(ids({0xE2, 'a', 0xE2, 0x82, 0xAC})), "a\xE2\x82\xAC");
  // A special token kept inside a multi-byte sequence breaks it: the bytes are dropped.
  EXPECT_EQ(byt5().decode({229, 0, 133, 175}, false), "<pad>");
  // Skipped, it is gone before the bytes are read: E2 82 AC is the euro sign.
  EXPECT_EQ(byt5().decode({229, 0, 133, 175}), "\xE2\x82\xAC");
}

TEST(ByT5Tokenizer, ExtraIdsCount) {
  const T5Tokenizer none = T5Tokenizer::byte_level(0);
  EXPECT_EQ(none.vocab_size(), 259);
  EXPECT_THROW(none.sentinel_id(0), Error);
  EXPECT_EQ(none.encode("<extra_id_0>").size(), 13u);  // 12 bytes + </s>
  const T5Tokenizer three = T5Tokenizer::byte_level(3);
  EXPECT_EQ(three.vocab_size(), 262);
  EXPECT_EQ(three.encode("<extra_id_2>"), (Ids{261, 1}));
  EXPECT_THROW(T5Tokenizer::byte_level(-1), Error);
}

TEST(ByT5Tokenizer, Commands) {
  auto r = run_compacter("tokenize --tokenizer byte --text Hello --text '\xC3\xA9 <extra_id_0>'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "75 104 111 111 114 1\n198 172 259 1\n");
  r = run_compacter("detokenize --tokenizer byte --ids '75 104 111 111 114 1' --keep-special");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello</s>\n");
}

// --tokenizer FOLDER: the folder's tokenizer, chosen as the model commands choose it (ByT5's
// bytes for a ByT5Tokenizer folder, its spiece.model otherwise); a wrong argument is one error.
TEST(ByT5Tokenizer, CommandsTakeAModelFolder) {
  ::compacter::testing::TempDir dir;
  ::compacter::testing::write_file(dir.file("config.json"), "{\"model_type\": \"t5\"}");
  ::compacter::testing::write_file(dir.file("tokenizer_config.json"),
                                   "{\"tokenizer_class\": \"ByT5Tokenizer\"}");
  auto r = run_compacter("tokenize --tokenizer " + dir.path() + " --text Hi");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "75 108 1\n");  // 'H' 72 + 3, 'i' 105 + 3, </s>
  r = run_compacter("detokenize --tokenizer " + dir.path() + " --ids '75 108 1'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Hi\n");
  r = run_compacter("tokenize --tokenizer " + dir.path() + "/nothing --text Hi");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(dir.path() + "/nothing not found"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
  // A T5 folder without spiece.model: refused, naming the folder.
  ::compacter::testing::write_file(dir.file("tokenizer_config.json"),
                                   "{\"tokenizer_class\": \"T5Tokenizer\"}");
  r = run_compacter("tokenize --tokenizer " + dir.path() + " --text Hi");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("has no spiece.model"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace compacter

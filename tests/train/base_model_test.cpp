// The tokenizer load_base_model (train/base_model.h) chooses for a model folder, as transformers'
// AutoTokenizer does (tokenizer_class of tokenizer_config.json, else of config.json: ByT5Tokenizer
// -> bytes, T5Tokenizer -> spiece.model, others refused by name), --tokenizer byte, and the check
// that the tokenizer is not larger than the model's vocabulary (both sizes, both files named).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "compacter/core/error.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/train/base_model.h"
#include "support/test_support.h"
#include "support/tiny_t5.h"

namespace compacter {
namespace {

using testing::TempDir;
using testing::write_file;

// A tiny T5 folder with `vocab` rows (no tokenizer files).
std::string byt5_folder(const TempDir& tmp, int64_t vocab, const std::string& name = "model") {
  testing::TinyT5 shape;
  shape.vocab = vocab;
  nn::T5Model model = testing::tiny_t5(shape, 2);
  nn::save_t5(*model, tmp.file(name));
  return tmp.file(name);
}

train::ModelSpec spec_for(const std::string& dir, const std::string& tokenizer = "") {
  train::ModelSpec s;
  s.dir = dir;
  s.tokenizer = tokenizer;
  return s;
}

TEST(BaseModelTokenizer, ByT5FromTokenizerConfig) {
  TempDir tmp;
  const std::string dir = byt5_folder(tmp, 384);
  write_file(dir + "/tokenizer_config.json",
             R"({"tokenizer_class": "ByT5Tokenizer", "extra_ids": 125, "eos_token": "</s>"})");
  const T5Tokenizer tok = train::load_tokenizer(spec_for(dir));
  EXPECT_TRUE(tok.is_byte_level());
  EXPECT_EQ(tok.vocab_size(), 384);
  EXPECT_NE(tok.source().find(dir + "/tokenizer_config.json"), std::string::npos) << tok.source();
  EXPECT_EQ(train::tokenizer_file(spec_for(dir)), dir + "/tokenizer_config.json");
  // The whole base: nothing cut (the tokenizer fills the 384 rows exactly).
  train::BaseModel base = train::load_base_model(spec_for(dir));
  EXPECT_TRUE(base.tokenizer.is_byte_level());
  EXPECT_EQ(base.model->shared->weight.size(0), 384);
  // extra_ids is read.
  write_file(dir + "/tokenizer_config.json",
             R"({"tokenizer_class": "ByT5Tokenizer", "extra_ids": 3})");
  EXPECT_EQ(train::load_tokenizer(spec_for(dir)).vocab_size(), 262);
  write_file(dir + "/tokenizer_config.json",
             R"({"tokenizer_class": "ByT5Tokenizer", "extra_ids": "many"})");
  const std::string m = testing::error_of([&] { train::load_tokenizer(spec_for(dir)); });
  EXPECT_NE(m.find("tokenizer_config.json"), std::string::npos) << m;
  EXPECT_NE(m.find("extra_ids"), std::string::npos) << m;
}

TEST(BaseModelTokenizer, ByT5FromConfigJson) {
  TempDir tmp;
  const std::string dir = byt5_folder(tmp, 384);
  auto j = nlohmann::json::parse(testing::read_file(dir + "/config.json"));
  j["tokenizer_class"] = "ByT5Tokenizer";  // as google/byt5-*'s config.json says
  write_file(dir + "/config.json", j.dump());
  const T5Tokenizer tok = train::load_tokenizer(spec_for(dir));
  EXPECT_TRUE(tok.is_byte_level());
  EXPECT_EQ(tok.vocab_size(), 384);
  EXPECT_EQ(train::tokenizer_file(spec_for(dir)), dir + "/config.json");
  // tokenizer_config.json comes first when it names a class.
  write_file(dir + "/tokenizer_config.json", R"({"tokenizer_class": "T5Tokenizer"})");
  const std::string m = testing::error_of([&] { train::load_tokenizer(spec_for(dir)); });
  EXPECT_NE(m.find("has no spiece.model"), std::string::npos) << m;
  // ... and is skipped when it names none.
  write_file(dir + "/tokenizer_config.json", R"({"model_max_length": 1024})");
  EXPECT_TRUE(train::load_tokenizer(spec_for(dir)).is_byte_level());
}

TEST(BaseModelTokenizer, ExplicitByteAndRefusals) {
  TempDir tmp;
  const std::string dir = byt5_folder(tmp, 384);
  // No tokenizer information, no spiece.model: asks for --tokenizer, naming the choices.
  std::string m = testing::error_of([&] { train::load_tokenizer(spec_for(dir)); });
  EXPECT_NE(m.find("has no spiece.model"), std::string::npos) << m;
  EXPECT_NE(m.find("--tokenizer"), std::string::npos) << m;
  EXPECT_NE(m.find("byte"), std::string::npos) << m;
  // --tokenizer byte.
  EXPECT_TRUE(train::load_tokenizer(spec_for(dir, "byte")).is_byte_level());
  EXPECT_EQ(train::tokenizer_file(spec_for(dir, "byte")), "");
  // Another tokenizer class is refused by name and file.
  write_file(dir + "/tokenizer_config.json", R"({"tokenizer_class": "GPT2Tokenizer"})");
  m = testing::error_of([&] { train::load_tokenizer(spec_for(dir)); });
  EXPECT_EQ(m.rfind("tokenizer_class \"GPT2Tokenizer\" in " + dir +
                        "/tokenizer_config.json: not supported",
                    0),
            0u)
      << m;
  // ... unless a tokenizer is given.
  EXPECT_TRUE(train::load_tokenizer(spec_for(dir, "byte")).is_byte_level());
  write_file(dir + "/tokenizer_config.json", "{not json");
  m = testing::error_of([&] { train::load_tokenizer(spec_for(dir)); });
  EXPECT_NE(m.find("tokenizer_config.json: not valid JSON"), std::string::npos) << m;
  // A missing model folder is reported as such first.
  m = testing::error_of([&] { train::load_tokenizer(spec_for(tmp.file("nothing"), "byte")); });
  EXPECT_NE(m.find("model folder not found"), std::string::npos) << m;
}

TEST(BaseModelTokenizer, LargerThanTheModelIsOneClearError) {
  TempDir tmp;
  const std::string dir = byt5_folder(tmp, 40);
  std::string m = testing::error_of([&] { train::load_base_model(spec_for(dir, "byte")); });
  EXPECT_EQ(m,
            "the tokenizer (ByT5 bytes, --tokenizer byte) has 384 ids, more than the 40 "
            "vocabulary rows of the model (" +
                dir +
                "/config.json): is it this model's tokenizer? (give the right one with "
                "--tokenizer)");
  // --resize-vocab to enough rows makes room; to too few is named.
  train::ModelSpec grown = spec_for(dir, "byte");
  grown.vocab_rows = 400;
  EXPECT_EQ(train::load_base_model(grown).model->shared->weight.size(0), 400);
  grown.vocab_rows = 100;
  m = testing::error_of([&] { train::load_base_model(grown); });
  EXPECT_NE(m.find("100 vocabulary rows"), std::string::npos) << m;
  EXPECT_NE(m.find("after --resize-vocab"), std::string::npos) << m;
}

TEST(BaseModelTokenizer, SpieceLargerThanTheModel) {
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  TempDir tmp;
  const std::string dir = byt5_folder(tmp, 512);
  const std::string spiece = testing::shared_path("data/t5-tokenizer/spiece.model");
  const std::string m = testing::error_of([&] { train::load_base_model(spec_for(dir, spiece)); });
  EXPECT_NE(m.find("the tokenizer (" + spiece + ") has 32100 ids"), std::string::npos) << m;
  EXPECT_NE(m.find("512 vocabulary rows"), std::string::npos) << m;
  EXPECT_NE(m.find(dir + "/config.json"), std::string::npos) << m;
}

// A SentencePiece folder's tokenizer_config.json "extra_ids" is read as transformers'
// T5Tokenizer reads it (mT5's folders say 0, UMT5's 300): vocab_size = pieces + extra_ids and
// <extra_id_k> = vocab_size - 1 - k (T5Tokenizer._convert_token_to_id); without it, 100.
TEST(BaseModelTokenizer, SpieceExtraIdsFromTokenizerConfig) {
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  TempDir tmp;
  const std::string dir = byt5_folder(tmp, 32384);
  write_file(dir + "/spiece.model",
             testing::read_file(testing::shared_path("data/t5-tokenizer/spiece.model")));
  const T5Tokenizer t100 = train::load_tokenizer(spec_for(dir));
  EXPECT_EQ(t100.vocab_size(), 32100);
  write_file(dir + "/tokenizer_config.json",
             R"({"tokenizer_class": "T5Tokenizer", "extra_ids": 300})");
  const T5Tokenizer t300 = train::load_tokenizer(spec_for(dir));
  EXPECT_EQ(t300.vocab_size(), 32300);
  EXPECT_EQ(t300.encode("<extra_id_0>", -1, false), (std::vector<int64_t>{32299}));
  EXPECT_EQ(t300.encode("<extra_id_299>", -1, false), (std::vector<int64_t>{32000}));
  // A base loaded with it keeps 32,300 rows, and its tokenizer fingerprint says so.
  const train::BaseModel base = train::load_base_model(spec_for(dir));
  EXPECT_EQ(base.model->shared->weight.size(0), 32300);
  EXPECT_NE(base.identity.tokenizer.find("+extra_ids=300"), std::string::npos)
      << base.identity.tokenizer;
  write_file(dir + "/tokenizer_config.json", R"({"extra_ids": 0})");
  const T5Tokenizer t0 = train::load_tokenizer(spec_for(dir));
  EXPECT_EQ(t0.vocab_size(), 32000);
  EXPECT_GT(t0.encode("<extra_id_0>", -1, false).size(), 1u);  // no sentinel: plain pieces
  write_file(dir + "/tokenizer_config.json", R"({"extra_ids": -4})");
  const std::string m = testing::error_of([&] { train::load_tokenizer(spec_for(dir)); });
  EXPECT_NE(m.find(dir + "/tokenizer_config.json: field \"extra_ids\""), std::string::npos) << m;
}

TEST(BaseModelTokenizer, OtherModelTypesAreRefusedFirst) {
  TempDir tmp;
  const std::string dir = byt5_folder(tmp, 384);
  auto j = nlohmann::json::parse(testing::read_file(dir + "/config.json"));
  j["model_type"] = "longt5";
  write_file(dir + "/config.json", j.dump());
  // No tokenizer either: the type is what the user hears about.
  const std::string m = testing::error_of([&] { train::load_base_model(spec_for(dir)); });
  EXPECT_EQ(m, "model_type \"longt5\" in " + dir +
                   "/config.json: not supported; supported: t5, mt5, umt5");
}

}  // namespace
}  // namespace compacter

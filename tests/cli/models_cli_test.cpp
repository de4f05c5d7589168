// Checkpoint types from the command line: tiny UMT5 and ByT5 folders written by `compacter
// init-model` run through `generate` (`forward` on UMT5 against the oracle: tests/nn/umt5_test);
// other model types are refused by name.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "compacter/data/tokenizer.h"
#include "compacter/io/safetensors.h"
#include "support/raw_safetensors.h"
#include "support/test_support.h"

namespace compacter {
namespace {

using testing::lines_of;
using testing::run_compacter;
using testing::TempDir;
using testing::write_file;

// `compacter init-model --out OUT` from a config.json holding `fields` (written beside OUT).
void init_model_from(const std::string& out, const nlohmann::json& fields) {
  write_file(out + ".config.json", fields.dump());
  auto r =
      run_compacter("init-model --model-config " + out + ".config.json --out " + out + " --seed 5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

nlohmann::json small_config_fields(int64_t vocab) {
  return {{"vocab_size", vocab},
          {"d_model", 16},
          {"d_kv", 4},
          {"d_ff", 32},
          {"num_layers", 2},
          {"num_heads", 4},
          {"feed_forward_proj", "gated-gelu"},
          {"tie_word_embeddings", false}};
}

// The ids after the tab of a `generate --show-ids` line: "text\t[1 2 3]".
std::vector<int64_t> ids_after_tab(const std::string& line) {
  std::vector<int64_t> ids;
  const auto open = line.rfind('['), close = line.rfind(']');
  if (open == std::string::npos || close == std::string::npos) return ids;
  std::istringstream in(line.substr(open + 1, close - open - 1));
  for (int64_t id; in >> id;) ids.push_back(id);
  return ids;
}

TEST(ModelsCli, ByT5FolderGeneratesWithItsByteTokenizer) {
  TempDir tmp;
  const std::string dir = tmp.file("byt5");
  init_model_from(dir, small_config_fields(384));
  // As a ByT5 folder on the hub: no spiece.model, a tokenizer_config.json naming the class.
  write_file(dir + "/tokenizer_config.json",
             R"({"tokenizer_class": "ByT5Tokenizer", "extra_ids": 125})");
  auto r = run_compacter("generate --model " + dir +
                         " --max-new-tokens 4 --show-ids --text 'h\xC3\xA9llo <extra_id_0>' "
                         "--text 'zwei'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  const T5Tokenizer bytes = T5Tokenizer::byte_level();
  for (const auto& line : lines) {
    const auto ids = ids_after_tab(line);
    ASSERT_GE(ids.size(), 1u) << line;
    EXPECT_LE(ids.size(), 4u) << line;
    for (int64_t id : ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, 384);
    }
    // The text before the tab is those ids read as bytes, specials skipped.
    EXPECT_EQ(line.substr(0, line.rfind('\t')), bytes.decode(ids)) << line;
  }
  // Without tokenizer_config.json the folder has no tokenizer, unless --tokenizer byte.
  std::filesystem::remove(dir + "/tokenizer_config.json");
  r = run_compacter("generate --model " + dir + " --max-new-tokens 2 --text hi");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("has no spiece.model"), std::string::npos) << r.err;
  r = run_compacter("generate --model " + dir + " --tokenizer byte --max-new-tokens 2 --text hi");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out).size(), 1u);
}

TEST(ModelsCli, UMT5FolderGenerates) {
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  TempDir tmp;
  const std::string dir = tmp.file("umt5");
  nlohmann::json fields = small_config_fields(32128);
  fields["model_type"] = "umt5";
  init_model_from(dir, fields);
  const auto config = nlohmann::json::parse(testing::read_file(dir + "/config.json"));
  EXPECT_EQ(config["model_type"], "umt5");
  EXPECT_EQ(config["architectures"][0], "UMT5ForConditionalGeneration");
  // init-model wrote a bias for every self-attention layer.
  const auto weights = testing::raw_load_safetensors(dir + "/model.safetensors");
  for (const char* stack : {"encoder", "decoder"})
    for (int block : {0, 1})
      EXPECT_TRUE(weights.count(std::string(stack) + ".block." + std::to_string(block) +
                                ".layer.0.SelfAttention.relative_attention_bias.weight"))
          << stack << " " << block;
  auto r = run_compacter("generate --model " + dir + " --tokenizer " +
                         testing::shared_path("data/t5-tokenizer/spiece.model") +
                         " --max-new-tokens 3 --show-ids --text 'Hello world' --text 'x'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("ignored"), std::string::npos) << r.err;
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  for (const auto& line : lines) {
    const auto ids = ids_after_tab(line);
    EXPECT_GE(ids.size(), 1u) << line;
    EXPECT_LE(ids.size(), 3u) << line;
  }
}

TEST(ModelsCli, OtherModelTypesAreRefusedByName) {
  TempDir tmp;
  const std::string dir = tmp.file("longt5");
  init_model_from(dir, small_config_fields(64));
  auto j = nlohmann::json::parse(testing::read_file(dir + "/config.json"));
  j["model_type"] = "longt5";
  write_file(dir + "/config.json", j.dump());
  safetensors::save(tmp.file("in.safetensors"),
                    {{"input_ids", torch::tensor({{5, 6, 1}}, torch::kLong)},
                     {"decoder_input_ids", torch::tensor({{0, 7}}, torch::kLong)}});
  for (const std::string& command :
       {"forward --inputs " + tmp.file("in.safetensors") + " --out " + tmp.file("out.safetensors"),
        std::string("generate --tokenizer byte --text hi")}) {
    SCOPED_TRACE(command);
    auto r = run_compacter(command + " --model " + dir);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("model_type \"longt5\" in " + dir +
                         "/config.json: not supported; supported: t5, mt5, umt5"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(std::filesystem::exists(tmp.file("out.safetensors")));
  }
}

}  // namespace
}  // namespace compacter

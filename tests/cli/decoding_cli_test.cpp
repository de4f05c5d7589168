// The decoding flags of generate, predict and eval: beam search with n-best JSON output and
// scores, sampling with a seed, the model folder's generation_config.json (a bad value names the
// file and field), and bad flags refused with exit code 2.
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>

#include "support/test_support.h"

namespace compacter {
namespace {

// ../shared/data/tiny-t5 with the byte-level tokenizer (its 512 rows fit ByT5's 384 ids).
std::string tiny_args() {
  return "--model " + testing::shared_path("data/tiny-t5") + " --tokenizer byte ";
}

TEST(DecodingCli, BeamSearchPrintsNBestJsonWithScores) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  auto r = testing::run_compacter("generate " + tiny_args() +
                                      "--max-new-tokens 4 --num-beams 3 --num-return-sequences 2 "
                                      "--length-penalty 0.5 --output-json --output-scores",
                                  "the of the\nin a\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = testing::lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  for (const std::string& line : lines) {
    const auto j = nlohmann::json::parse(line);
    ASSERT_EQ(j.at("sequences").size(), 2u) << line;
    double previous = INFINITY;
    for (const auto& s : j["sequences"]) {
      const auto& lp = s.at("token_logprobs");
      ASSERT_EQ(lp.size(), s.at("tokens").size());
      double sum = 0;
      for (const auto& x : lp) sum += x.get<double>();
      EXPECT_NEAR(sum, s.at("logprob_sum").get<double>(), 1e-4) << line;
      const double len = static_cast<double>(lp.size());
      EXPECT_NEAR(s.at("score").get<double>(), s["logprob_sum"].get<double>() / std::sqrt(len),
                  1e-4);
      EXPECT_LE(s["score"].get<double>(), previous);  // best first
      previous = s["score"].get<double>();
      EXPECT_TRUE(s.at("text").is_string());
    }
  }
}

TEST(DecodingCli, DefaultIsGreedyAndSamplingRepeatsWithASeed) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  const std::string input = "the of the\nin a\n";
  auto plain = testing::run_compacter("generate " + tiny_args() + "--max-new-tokens 6", input);
  auto greedy = testing::run_compacter(
      "generate " + tiny_args() + "--max-new-tokens 6 --num-beams 1 --do-sample=false", input);
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out, greedy.out);
  const std::string sample = "generate " + tiny_args() +
                             "--max-new-tokens 6 --do-sample --seed 9 --num-return-sequences 3";
  auto a = testing::run_compacter(sample, input), b = testing::run_compacter(sample, input);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(testing::lines_of(a.out).size(), 6u);  // three lines per input
}

TEST(DecodingCli, BadFlagsExitWithTwo) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  for (const char* flags :
       {"--num-return-sequences 3", "--early-stopping maybe", "--do-sample --temperature 0",
        "--bad-words-ids '[[x]]'", "--num-beams 2 --do-sample",
        "--num-beams 2 --num-return-sequences 3", "--top-k x"}) {
    SCOPED_TRACE(flags);
    auto r = testing::run_compacter("generate " + tiny_args() + "--text hi " + flags);
    EXPECT_EQ(r.exit_code, 2) << r.err;
  }
  auto r = testing::run_compacter("generate " + tiny_args() + "--text hi --num-beams 0");
  EXPECT_NE(r.err.find("--num-beams"), std::string::npos) << r.err;
}

TEST(DecodingCli, ModelFoldersGenerationConfig) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  testing::TempDir dir;
  namespace fs = std::filesystem;
  for (const char* f : {"config.json", "model.safetensors"})
    fs::create_symlink(testing::shared_path(std::string("data/tiny-t5/") + f), dir.file(f));
  const std::string args = "generate --model " + dir.path() + " --tokenizer byte --text hi ";
  // num_beams 2 and two sequences from the file: two text lines.
  testing::write_file(dir.file("generation_config.json"),
                      R"({"num_beams": 2, "num_return_sequences": 2, "max_length": 5})");
  auto r = testing::run_compacter(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(testing::lines_of(r.out).size(), 2u) << r.out;
  // Flags win over the file.
  r = testing::run_compacter(args + "--num-beams 3 --num-return-sequences 3 --output-json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["sequences"].size(), 3u);
  // A bad value: exit 1, naming the file and the field.
  testing::write_file(dir.file("generation_config.json"), R"({"early_stopping": "sometimes"})");
  r = testing::run_compacter(args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("generation_config.json"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("early_stopping"), std::string::npos) << r.err;
}

TEST(DecodingCli, PredictTakesTheDecodingFlags) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  auto r = testing::run_compacter("predict " + tiny_args() +
                                  "--max-new-tokens 3 --num-beams 2 --num-return-sequences 2 "
                                  "--output-json --text 'hello there'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.at("sequences").size(), 2u);
  EXPECT_EQ(j["output"], j["sequences"][0]["text"]);
  r = testing::run_compacter("predict " + tiny_args() + "--text hi --num-beams 0");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  // Constrained to labels: the output is one of them, with a distribution summing to 1.
  r = testing::run_compacter("predict " + tiny_args() +
                             "--labels yes,no,maybe --output-json --text 'is it?'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c = nlohmann::json::parse(r.out);
  const auto& p = c.at("label_probabilities");
  ASSERT_EQ(p.size(), 3u);
  double total = 0;
  for (const auto& item : p.items()) total += item.value().get<double>();
  EXPECT_NEAR(total, 1.0, 1e-9);
  const std::string output = c.at("output");
  EXPECT_TRUE(output == "yes" || output == "no" || output == "maybe") << output;
  for (const auto& item : p.items()) EXPECT_LE(item.value().get<double>(), p[output].get<double>());
}

}  // namespace
}  // namespace compacter

// GenerationConfig defaults and generation_config.json (transformers' format, bad values named
// by file and field), and the logits processors and warpers on hand-computed scores.
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "compacter/core/error.h"
#include "compacter/train/decoding/generation_config.h"
#include "compacter/train/decoding/logits_processors.h"
#include "support/test_support.h"

namespace compacter {
namespace {

using decoding::GenerationConfig;
const double kInf = std::numeric_limits<double>::infinity();

T5Config model_config() {
  T5Config c;
  c.eos_token_id = 1;
  c.pad_token_id = 0;
  c.decoder_start_token_id = 0;
  return c;
}

TEST(GenerationConfig, TransformersDefaultsWithTheModelsIds) {
  T5Config m = model_config();
  m.eos_token_id = 7;
  const GenerationConfig c = decoding::from_model_config(m);
  EXPECT_EQ(c.eos_token_id, 7);
  EXPECT_EQ(c.num_beams, 1);
  EXPECT_EQ(c.length_penalty, 1.0);
  EXPECT_EQ(c.early_stopping, "false");
  EXPECT_EQ(c.top_k, 50);
  EXPECT_EQ(c.top_p, 1.0);
  // transformers 5.x: no length set -> 20 new tokens; max_length counts the decoder start
  // token; max_new_tokens wins over both.
  EXPECT_EQ(c.max_length, -1);
  EXPECT_EQ(c.new_token_limit(), 20);
  GenerationConfig d = c;
  d.max_length = 20;
  EXPECT_EQ(d.new_token_limit(), 19);
  d.max_new_tokens = 5;
  EXPECT_EQ(d.new_token_limit(), 5);
  GenerationConfig unset;
  EXPECT_EQ(unset.resolved(m).eos_token_id, 7);
}

TEST(GenerationConfig, ReadsTheModelFoldersFile) {
  testing::TempDir dir;
  // No file: the defaults.
  EXPECT_EQ(decoding::load_generation_config(dir.path(), model_config()).num_beams, 1);
  testing::write_file(dir.file("generation_config.json"), R"({
    "_from_model_config": true, "transformers_version": "4.36.2", "decoder_start_token_id": 0,
    "eos_token_id": [1], "pad_token_id": 0, "num_beams": 4, "early_stopping": true,
    "length_penalty": 0.6, "max_length": 200, "no_repeat_ngram_size": 3, "temperature": null,
    "bad_words_ids": [[5], [6, 7]], "num_beam_groups": 1, "use_cache": true})");
  const GenerationConfig c = decoding::load_generation_config(dir.path(), model_config());
  EXPECT_EQ(c.num_beams, 4);
  EXPECT_EQ(c.early_stopping, "true");
  EXPECT_EQ(c.length_penalty, 0.6);
  EXPECT_EQ(c.new_token_limit(), 199);
  EXPECT_EQ(c.no_repeat_ngram_size, 3);
  EXPECT_EQ(c.temperature, 1.0);  // null: unset
  EXPECT_EQ(c.bad_words(), (std::vector<std::vector<int64_t>>{{5}, {6, 7}}));
  testing::write_file(dir.file("generation_config.json"), R"({"early_stopping": "never"})");
  EXPECT_EQ(decoding::load_generation_config(dir.path(), model_config()).early_stopping, "never");
}

TEST(GenerationConfig, BadValuesNameTheFileAndField) {
  testing::TempDir dir;
  const std::string file = dir.file("generation_config.json");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"num_beams": "4"})", "num_beams"},
      {R"({"num_beams": 0})", "num_beams"},
      {R"({"early_stopping": "sometimes"})", "early_stopping"},
      {R"({"num_beams": 2, "num_return_sequences": 3})", "num_return_sequences"},
      {R"({"num_return_sequences": 2})", "num_return_sequences"},
      {R"({"do_sample": true, "top_p": -0.5})", "top_p"},  // 1.5: off, as in transformers
      {R"({"max_new_tokens": 0})", "max_new_tokens"},      // transformers refuses 0
      {R"({"max_length": 1})", "max_length"},              // only the start token
      {R"({"bad_words_ids": []})", "bad_words_ids"},
      {R"({"top_h": 0.5})", "top_h"},
      {R"({"do_sample": true, "temperature": 0})", "temperature"},
      {R"({"do_sample": true, "typical_p": 0})", "typical_p"},
      {R"({"repetition_penalty": 0})", "repetition_penalty"},
      {R"({"bad_words_ids": [[-1]]})", "bad_words_ids"},
      {R"({"bad_words_ids": [5]})", "bad_words_ids"},
      {R"({"eos_token_id": [1, 2]})", "eos_token_id"},
      {R"({"num_beam_groups": 2})", "num_beam_groups"},
      {R"({"forced_bos_token_id": 3})", "forced_bos_token_id"},
      {R"({"do_sample": true, "num_beams": 2})", "do_sample"},
      {R"([1, 2])", "JSON object"},
      {R"({"num_beams": 4)", "not valid JSON"}};
  for (const auto& [text, field] : cases) {
    SCOPED_TRACE(text);
    testing::write_file(file, text);
    try {
      decoding::load_generation_config(dir.path(), model_config());
      ADD_FAILURE() << "accepted";
    } catch (const UsageError& e) {
      ADD_FAILURE() << "a file's bad value is not a usage error: " << e.what();
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(file), std::string::npos) << what;
      EXPECT_NE(what.find(field), std::string::npos) << what;
    }
  }
  // The same checks on values given by a caller are usage errors.
  GenerationConfig c;
  c.num_beams = 0;
  EXPECT_THROW(c.validate("flags", true), UsageError);
}

torch::Tensor row(std::vector<double> v) {
  return torch::tensor(v, torch::kFloat32).unsqueeze(0);
}

void expect_row(const torch::Tensor& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(1), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    const double g = got[0][static_cast<int64_t>(i)].item<double>();
    if (std::isinf(want[i]))
      EXPECT_TRUE(std::isinf(g) && g < 0) << "index " << i << ": " << g;
    else
      EXPECT_NEAR(g, want[i], 1e-6) << "index " << i;
  }
}

TEST(LogitsProcessors, HandComputed) {
  GenerationConfig c = decoding::from_model_config(model_config());
  {
    // Repetition penalty 2 on tokens 0 (the start token) and 1: 2 -> 1, -1 -> -2.
    GenerationConfig r = c;
    r.repetition_penalty = 2.0;
    expect_row(decoding::LogitsProcessors(r).process({{0, 1}}, row({2, -1, 0.5, 3})),
               {1, -2, 0.5, 3});
  }
  {
    // No repeated bigram: after 5 (seen as 5 -> 6), 6 is banned.
    EXPECT_EQ(decoding::banned_ngram_tokens({0, 5, 6, 5}, 2), (std::vector<int64_t>{6}));
    EXPECT_EQ(decoding::banned_ngram_tokens({0, 5, 6, 5}, 3), (std::vector<int64_t>{}));
    EXPECT_EQ(decoding::banned_ngram_tokens({0, 5, 6, 0, 5}, 3), (std::vector<int64_t>{6}));
    EXPECT_EQ(decoding::banned_ngram_tokens({0, 5}, 1), (std::vector<int64_t>{0, 5}));
    EXPECT_EQ(decoding::banned_ngram_tokens({0}, 3), (std::vector<int64_t>{}));
  }
  {
    // Bad words [[3], [2, 4], [1]]: 3 always, 4 after 2; [1] (</s>) is dropped, as transformers
    // does.
    GenerationConfig b = c;
    b.bad_words_ids = "[[3], [2, 4], [1]]";
    decoding::LogitsProcessors p(b);
    expect_row(p.process({{0, 2}}, row({0, 0, 0, 0, 0})), {0, 0, 0, -kInf, -kInf});
    expect_row(p.process({{0, 4}}, row({0, 0, 0, 0, 0})), {0, 0, 0, -kInf, 0});
  }
  {
    // min_new_tokens 2: </s> banned while fewer than 2 tokens are new; min_length 3 counts the
    // start token.
    GenerationConfig m = c;
    m.min_new_tokens = 2;
    decoding::LogitsProcessors p(m);
    expect_row(p.process({{0, 4}}, row({1, 1, 1})), {1, -kInf, 1});
    expect_row(p.process({{0, 4, 5}}, row({1, 1, 1})), {1, 1, 1});
    GenerationConfig l = c;
    l.min_length = 3;
    decoding::LogitsProcessors q(l);
    expect_row(q.process({{0, 4}}, row({1, 1, 1})), {1, -kInf, 1});
    expect_row(q.process({{0, 4, 5}}, row({1, 1, 1})), {1, 1, 1});
    // Both set: min_new_tokens replaces min_length (transformers 5.x: min_length =
    // min_new_tokens + 1), so min_length 6 does not keep </s> banned after 1 new token; an
    // explicit min_new_tokens 0 lifts min_length altogether.
    GenerationConfig both = c;
    both.min_length = 6;
    both.min_new_tokens = 1;
    decoding::LogitsProcessors r(both);
    expect_row(r.process({{0}}, row({1, 1, 1})), {1, -kInf, 1});
    expect_row(r.process({{0, 4}}, row({1, 1, 1})), {1, 1, 1});
    both.min_new_tokens = 0;
    expect_row(decoding::LogitsProcessors(both).process({{0}}, row({1, 1, 1})), {1, 1, 1});
  }
  {
    // A bad word outside the vocabulary is refused (transformers' SequenceBiasLogitsProcessor).
    GenerationConfig b = c;
    b.bad_words_ids = "[[2], [9]]";
    EXPECT_THROW(decoding::LogitsProcessors(b).process({{0}}, row({1, 1, 1})), UsageError);
  }
  {
    // Warpers apply only when sampling: temperature 2, then top-k 2.
    GenerationConfig s = c;
    s.temperature = 2.0;
    s.top_k = 2;
    expect_row(decoding::LogitsProcessors(s).warp(row({4, 2, 8, 6})), {4, 2, 8, 6});
    s.do_sample = true;
    expect_row(decoding::LogitsProcessors(s).warp(row({4, 2, 8, 6})), {-kInf, -kInf, 4, 3});
    // top-p 0.75 on p = (0.5, 0.3, 0.15, 0.05): the two least likely (mass 0.2 <= 0.25) go.
    GenerationConfig t = c;
    t.do_sample = true;
    t.top_k = 0;
    t.top_p = 0.75;
    const std::vector<double> logp = {std::log(0.5), std::log(0.3), std::log(0.15), std::log(0.05)};
    expect_row(decoding::LogitsProcessors(t).warp(row(logp)), {logp[0], logp[1], -kInf, -kInf});
  }
}

}  // namespace
}  // namespace compacter

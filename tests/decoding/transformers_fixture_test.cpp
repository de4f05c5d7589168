// Decoding against transformers' own `generate` (issue #10): tests/fixtures/transformers/
// generation_reference.json holds what transformers 5.17 (torch 2.11, CPU, float32) returned on
// ../shared/data/tiny-t5 with row 1 (</s>) of its tied embedding scaled by `eos_scale`, for four
// inputs of different lengths (make_generation_fixtures.py, run on a machine that has
// transformers). Greedy and beam search: the same tokens, per-token scores
// (compute_transition_scores) and sequences_scores; each case's keyword arguments are read as a
// generation_config.json would be. Sampling: along transformers' sampled tokens, the processed
// and warped scores of every step equal ours (the same tokens kept, the same values); the draws
// themselves come from another random stream.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compacter/nn/checkpoint.h"
#include "compacter/train/decoding/decode.h"
#include "compacter/train/decoding/generation_config.h"
#include "compacter/train/decoding/logits_processors.h"
#include "support/test_support.h"

namespace compacter {
namespace {

using decoding::GenerationConfig;

struct Reference {
  nlohmann::json doc;
  nn::T5Model model{nullptr};
  torch::Tensor ids, mask;
};

Reference load_reference() {
  Reference r;
  r.doc = nlohmann::json::parse(testing::read_file(std::string(COMPACTER_SOURCE_DIR) +
                                                   "/tests/fixtures/transformers/"
                                                   "generation_reference.json"));
  r.model = nn::load_t5(testing::shared_path("data/tiny-t5"), {}).model;
  r.model->eval();
  {
    torch::NoGradGuard no_grad;
    const double scale = r.doc["eos_scale"].get<double>();
    r.model->shared->weight[1].mul_(scale);  // tied: the output layer's row 1 too
    for (const auto& p : r.model->named_parameters())
      if (p.key() == "lm_head.weight" && p.value().data_ptr() != r.model->shared->weight.data_ptr())
        p.value()[1].mul_(scale);
  }
  auto rows = [](const nlohmann::json& j) {
    std::vector<int64_t> flat;
    for (const auto& row : j)
      for (const auto& v : row) flat.push_back(v.get<int64_t>());
    return torch::tensor(flat, torch::kLong).view({static_cast<int64_t>(j.size()), -1});
  };
  r.ids = rows(r.doc["input_ids"]);
  r.mask = rows(r.doc["attention_mask"]);
  return r;
}

// transformers' row: the decoder start token, the tokens, then padding after the first </s>.
std::vector<int64_t> tokens_of(const nlohmann::json& row, int64_t eos) {
  std::vector<int64_t> out;
  for (size_t i = 1; i < row.size(); ++i) {
    out.push_back(row[i].get<int64_t>());
    if (out.back() == eos) break;
  }
  return out;
}

TEST(TransformersGenerate, SearchEqualsTransformersTokenForTokenAndScoreForScore) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  Reference r = load_reference();
  const int64_t eos = r.model->config().eos_token_id;
  int cases = 0;
  for (const auto& c : r.doc["search"]) {
    SCOPED_TRACE(c["name"].get<std::string>() + " " + c["kwargs"].dump());
    ASSERT_FALSE(c.contains("error")) << c["error"];
    GenerationConfig g = decoding::from_model_config(r.model->config());
    decoding::apply_generation_json(c["kwargs"], "the case's kwargs", g);
    g.output_scores = true;
    const auto out = decoding::generate(*r.model, r.ids, r.mask, g);
    const int64_t n = g.num_return_sequences;
    ASSERT_EQ(c["sequences"].size(), out.size() * static_cast<size_t>(n));
    for (size_t b = 0; b < out.size(); ++b) {
      ASSERT_EQ(out[b].size(), static_cast<size_t>(n));
      for (int64_t k = 0; k < n; ++k) {
        const size_t row = b * static_cast<size_t>(n) + static_cast<size_t>(k);
        const auto want = tokens_of(c["sequences"][row], eos);
        const decoding::Sequence& s = out[b][static_cast<size_t>(k)];
        EXPECT_EQ(s.tokens, want) << "input " << b << " sequence " << k;
        if (s.tokens != want) continue;
        const auto& ts = c["transition_scores"][row];
        for (size_t t = 0; t < want.size(); ++t) {
          ASSERT_FALSE(ts[t].is_null()) << t;
          EXPECT_NEAR(s.token_logprobs[t], ts[t].get<double>(), 2e-5)
              << "input " << b << " sequence " << k << " token " << t;
        }
        if (g.is_beam_search()) {
          const double want_score = c["sequences_scores"][row].get<double>();
          EXPECT_NEAR(s.score, want_score, 1e-5 * std::max(1.0, std::abs(want_score)))
              << "input " << b << " sequence " << k;
        }
      }
    }
    ++cases;
  }
  EXPECT_GE(cases, 15);
}

TEST(TransformersGenerate, SamplingDistributionsEqualTransformersAlongItsDraws) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  Reference r = load_reference();
  const int64_t eos = r.model->config().eos_token_id;
  torch::NoGradGuard no_grad;
  int compared = 0;
  for (const auto& c : r.doc["sampling"]) {
    SCOPED_TRACE(c["name"].get<std::string>() + " " + c["kwargs"].dump());
    ASSERT_FALSE(c.contains("error")) << c["error"];
    GenerationConfig g = decoding::from_model_config(r.model->config());
    decoding::apply_generation_json(c["kwargs"], "the case's kwargs", g);
    const decoding::LogitsProcessors processors(g.resolved(r.model->config()));
    const auto& seqs = c["sequences"];
    const int64_t rows = static_cast<int64_t>(seqs.size());
    const int64_t width = static_cast<int64_t>(seqs[0].size());
    std::vector<int64_t> flat;
    for (const auto& row : seqs)
      for (const auto& v : row) flat.push_back(v.get<int64_t>());
    const torch::Tensor dec = torch::tensor(flat, torch::kLong).view({rows, width});
    const torch::Tensor logits =
        r.model->forward(r.ids, r.mask, dec.narrow(1, 0, width - 1), {}).logits;
    std::vector<bool> ended(static_cast<size_t>(rows), false);
    for (int64_t t = 0; t + 1 < width; ++t) {
      std::vector<decoding::History> histories;
      for (int64_t b = 0; b < rows; ++b) {
        decoding::History h;
        for (int64_t i = 0; i <= t; ++i) h.push_back(seqs[b][i].get<int64_t>());
        histories.push_back(h);
      }
      const torch::Tensor mine =
          processors.warp(processors.process(histories, logits.select(1, t).contiguous()));
      for (int64_t b = 0; b < rows; ++b) {
        if (ended[b]) continue;
        const auto& theirs = c["steps"][t][b];
        const torch::Tensor row = mine[b];
        EXPECT_EQ(torch::isfinite(row).sum().item<int64_t>(), static_cast<int64_t>(theirs.size()))
            << "step " << t << " row " << b;
        for (const auto& entry : theirs) {
          const float v = row[entry[0].get<int64_t>()].item<float>();
          EXPECT_NEAR(v, entry[1].get<double>(), 2e-5)
              << "step " << t << " row " << b << " token " << entry[0];
        }
        ++compared;
        if (seqs[b][t + 1].get<int64_t>() == eos) ended[b] = true;
      }
    }
  }
  EXPECT_GT(compared, 40);
}

}  // namespace
}  // namespace compacter

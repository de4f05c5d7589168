// Greedy search, beam search and their scores against independent references: teacher-forced
// log-probabilities from full forward passes (no cache), an exhaustive search over every
// sequence of a 4-token vocabulary up to length 3, and a naive beam search written here that
// re-runs the whole decoder on every prefix at every step.
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <map>

#include "compacter/nn/attention_cache.h"
#include "compacter/train/decoding/decode.h"
#include "compacter/train/generate.h"
#include "support/test_support.h"
#include "support/tiny_t5.h"

namespace compacter {
namespace {

using decoding::GenerationConfig;
using decoding::Sequence;

// log p(tokens[i] | tokens[<i]) for one input (row of ids/mask), from one full teacher-forced
// forward pass without a cache.
// With `no_eos_before` > 0, </s> is impossible for the first that many tokens (min_new_tokens).
std::vector<double> teacher_forced(nn::T5ModelImpl& model, const torch::Tensor& ids,
                                   const torch::Tensor& mask, const std::vector<int64_t>& tokens,
                                   int64_t no_eos_before = 0) {
  torch::NoGradGuard g;
  model.eval();
  std::vector<int64_t> dec{model.config().decoder_start_token_id};
  dec.insert(dec.end(), tokens.begin(), tokens.end());
  dec.pop_back();
  torch::Tensor d = torch::tensor(dec, torch::kLong).unsqueeze(0);
  torch::Tensor logits = model.forward(ids.unsqueeze(0), mask.unsqueeze(0), d, {}).logits[0];
  const int64_t banned = std::min<int64_t>(no_eos_before, logits.size(0));
  if (banned > 0)
    logits.narrow(0, 0, banned)
        .select(1, model.config().eos_token_id)
        .fill_(-std::numeric_limits<float>::infinity());
  torch::Tensor lp = torch::log_softmax(logits, -1).to(torch::kDouble);
  std::vector<double> out;
  for (size_t i = 0; i < tokens.size(); ++i) out.push_back(lp[i][tokens[i]].item<double>());
  return out;
}

double sum_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

struct Fixture {
  nn::T5Model model{nullptr};
  torch::Tensor ids, mask;
};

// A tiny T5 whose </s> (id 1) is likely enough that sequences end at different steps; three
// inputs of different lengths (right-padded).
Fixture make_fixture(int64_t vocab, uint64_t seed, bool v1_1 = false) {
  Fixture f;
  testing::TinyT5 shape;
  shape.vocab = vocab;
  shape.d_model = 16;
  shape.d_kv = 4;
  shape.heads = 4;
  shape.d_ff = 24;
  shape.v1_1 = v1_1;
  f.model = testing::tiny_t5(shape, seed);
  {
    torch::NoGradGuard g;
    f.model->shared->weight[1].mul_(4.0);
  }
  f.model->eval();  // beam_search() is called directly in one test, without generate()'s guard
  torch::manual_seed(static_cast<uint64_t>(seed) + 100);
  f.ids = torch::randint(2, vocab, {3, 6}, torch::kLong);
  f.mask = torch::ones({3, 6}, torch::kLong);
  f.mask[1].narrow(0, 3, 3).fill_(0);
  f.mask[2].narrow(0, 5, 1).fill_(0);
  f.ids.masked_fill_(f.mask == 0, 0);
  {
    // An output bias that puts </s> just under the best first token on average, so that inputs
    // end at different steps.
    torch::NoGradGuard g;
    torch::Tensor first =
        f.model->forward(f.ids, f.mask, torch::zeros({3, 1}, torch::kLong), {}).logits.select(1, 0);
    const double gap = (std::get<0>(first.max(1)) - first.select(1, 1)).mean().item<double>();
    f.model->lm_head->enable_bias();
    f.model->lm_head->bias[1].fill_(gap - 0.3);
  }
  return f;
}

GenerationConfig config_for(const nn::T5ModelImpl& model, int64_t max_new) {
  GenerationConfig c = decoding::from_model_config(model.config());
  c.max_new_tokens = max_new;
  return c;
}

TEST(Decoding, GreedyEqualsBeamOneEqualsTopKOneSampling) {
  for (bool v11 : {false, true}) {
    SCOPED_TRACE(v11 ? "v1.1" : "v1.0");
    Fixture f = make_fixture(40, v11 ? 7 : 8, v11);
    GenerationConfig greedy = config_for(*f.model, 10);
    const auto g = decoding::generate(*f.model, f.ids, f.mask, greedy);
    // The beam-search loop itself with one beam (generate() would pick greedy search).
    const auto b =
        decoding::beam_search(*f.model, f.ids, f.mask, greedy.resolved(f.model->config()), {});
    GenerationConfig sample = greedy;
    sample.do_sample = true;
    sample.top_k = 1;
    sample.seed = 5;
    const auto s = decoding::generate(*f.model, f.ids, f.mask, sample);
    int ended = 0;
    for (int64_t r = 0; r < 3; ++r) {
      ASSERT_EQ(g[r].size(), 1u);
      EXPECT_EQ(g[r][0].tokens, b[r][0].tokens) << "input " << r;
      EXPECT_EQ(g[r][0].tokens, s[r][0].tokens) << "input " << r;
      ended += g[r][0].finished;
      // The greedy tokens are the argmax of teacher-forced passes, and their log-probabilities
      // (the sequence score) are the teacher-forced ones.
      const auto lp = teacher_forced(*f.model, f.ids[r], f.mask[r], g[r][0].tokens);
      ASSERT_EQ(lp.size(), g[r][0].token_logprobs.size());
      for (size_t i = 0; i < lp.size(); ++i) EXPECT_NEAR(g[r][0].token_logprobs[i], lp[i], 1e-5);
      EXPECT_NEAR(g[r][0].score, sum_of(lp), 1e-5);
      EXPECT_NEAR(g[r][0].score, sum_of(g[r][0].token_logprobs), 1e-9);
    }
    EXPECT_GE(ended, 1) << "no input ended with </s>: the test does not cover early ends";
    // The old entry point gives the same tokens, padded.
    GenerateOptions o;
    o.max_new_tokens = 10;
    torch::Tensor old = greedy_generate(*f.model, f.ids, f.mask, o);
    EXPECT_TRUE(torch::equal(old, decoding::padded_tokens(g, 0)));
  }
}

// Every sequence of new tokens over vocabulary {0, 1 = </s>, 2, 3} that ends with </s> within
// 3 tokens or is cut at 3, scored as transformers scores finished beams.
struct Best {
  std::vector<int64_t> tokens;
  double score = -1e300;
};
Best exhaustive(nn::T5ModelImpl& model, const torch::Tensor& ids, const torch::Tensor& mask,
                double length_penalty) {
  Best best;
  std::vector<std::vector<int64_t>> all;
  for (int64_t a = 0; a < 4; ++a) {
    all.push_back({a});
    for (int64_t b = 0; b < 4; ++b) {
      all.push_back({a, b});
      for (int64_t c = 0; c < 4; ++c) all.push_back({a, b, c});
    }
  }
  for (const auto& seq : all) {
    bool ok = true;  // </s> only last; without it, only at the full length
    for (size_t i = 0; i + 1 < seq.size(); ++i) ok = ok && seq[i] != 1;
    if (seq.back() != 1 && seq.size() != 3) ok = false;
    if (!ok) continue;
    const double sum = sum_of(teacher_forced(model, ids, mask, seq));
    const double score = sum / std::pow(static_cast<double>(seq.size()), length_penalty);
    if (score > best.score) best = {seq, score};
  }
  return best;
}

TEST(Decoding, BeamSearchWithEnoughBeamsFindsTheExhaustiveOptimum) {
  Fixture f = make_fixture(4, 3);
  for (double lp : {-1.0, 0.0, 0.5, 1.0, 2.0}) {
    for (const char* early : {"false", "never"}) {
      SCOPED_TRACE(cat("length_penalty ", lp, ", early_stopping ", early));
      GenerationConfig c = config_for(*f.model, 3);
      c.num_beams = 40;  // >= 36: every (prefix, token) pair of the last step is a candidate
      c.length_penalty = lp;
      c.early_stopping = early;
      const auto out = decoding::generate(*f.model, f.ids, f.mask, c);
      for (int64_t r = 0; r < 3; ++r) {
        const Best best = exhaustive(*f.model, f.ids[r], f.mask[r], lp);
        ASSERT_EQ(out[r].size(), 1u);
        EXPECT_EQ(out[r][0].tokens, best.tokens) << "input " << r;
        EXPECT_NEAR(out[r][0].score, best.score, 1e-5) << "input " << r;
      }
    }
  }
}

// transformers' beam search (5.x's _beam_search) written plainly: every step re-runs the full
// decoder on every running prefix (no cache); finished hypotheses scored in float32; an input
// stops when its best running beam, over the new tokens so far, cannot beat the worst finished.
struct NaiveHyp {
  double score;
  std::vector<int64_t> tokens;
};
std::vector<NaiveHyp> naive_beam_search(nn::T5ModelImpl& model, const torch::Tensor& ids,
                                        const torch::Tensor& mask, int64_t K, int64_t max_new,
                                        double lp, int64_t n_return) {
  torch::NoGradGuard g;
  model.eval();
  const int64_t V = model.config().vocab_size, eos = 1;
  std::vector<std::vector<int64_t>> beams(K);
  std::vector<float> scores(K, -1e9f);
  scores[0] = 0.0f;
  std::vector<NaiveHyp> hyps;
  double worst = 1e9;
  auto add = [&](std::vector<int64_t> tokens, float sum, int64_t len) {
    const double s = sum / static_cast<float>(std::pow(static_cast<double>(len), lp));
    if (static_cast<int64_t>(hyps.size()) < K || s > worst) {
      hyps.push_back({s, std::move(tokens)});
      if (static_cast<int64_t>(hyps.size()) > K) {
        size_t lowest = 0;
        for (size_t i = 1; i < hyps.size(); ++i)
          if (hyps[i].score < hyps[lowest].score) lowest = i;
        hyps.erase(hyps.begin() + static_cast<std::ptrdiff_t>(lowest));
        worst = 1e300;
        for (const auto& h : hyps) worst = std::min(worst, h.score);
      } else {
        worst = std::min(worst, s);
      }
    }
  };
  for (int64_t step = 0; step < max_new; ++step) {
    // Candidates (score, beam, token) from full forward passes.
    std::vector<std::tuple<float, int64_t, int64_t>> cand;
    for (int64_t k = 0; k < K; ++k) {
      std::vector<int64_t> dec{0};
      dec.insert(dec.end(), beams[k].begin(), beams[k].end());
      torch::Tensor logits = model
                                 .forward(ids.unsqueeze(0), mask.unsqueeze(0),
                                          torch::tensor(dec, torch::kLong).unsqueeze(0), {})
                                 .logits[0][-1];
      torch::Tensor l = torch::log_softmax(logits.to(torch::kFloat32), -1);
      for (int64_t t = 0; t < V; ++t) cand.emplace_back(l[t].item<float>() + scores[k], k, t);
    }
    std::stable_sort(cand.begin(), cand.end(),
                     [](const auto& a, const auto& b) { return std::get<0>(a) > std::get<0>(b); });
    std::vector<std::vector<int64_t>> next;
    std::vector<float> next_scores;
    for (int64_t rank = 0; rank < 2 * K && static_cast<int64_t>(next.size()) < K; ++rank) {
      auto [s, k, t] = cand[rank];
      std::vector<int64_t> seq = beams[k];
      seq.push_back(t);
      if (t == eos) {
        if (rank < K) add(seq, s, step + 1);
        continue;
      }
      next.push_back(seq);
      next_scores.push_back(s);
    }
    beams = next;
    scores = next_scores;
    const float best_running = next_scores[0];
    if (static_cast<int64_t>(hyps.size()) >= K &&
        !(best_running / static_cast<float>(std::pow(static_cast<double>(step + 1), lp)) >
          static_cast<float>(worst)))
      break;  // early_stopping false
    if (step + 1 == max_new)
      for (int64_t k = 0; k < K; ++k) add(beams[k], scores[k], step + 1);
  }
  std::stable_sort(hyps.begin(), hyps.end(),
                   [](const NaiveHyp& a, const NaiveHyp& b) { return a.score > b.score; });
  hyps.resize(std::min<size_t>(hyps.size(), static_cast<size_t>(n_return)));
  return hyps;
}

TEST(Decoding, CachedBeamSearchEqualsNaiveRecomputingBeamSearch) {
  for (bool v11 : {false, true}) {
    SCOPED_TRACE(v11 ? "v1.1" : "v1.0");
    Fixture f = make_fixture(30, v11 ? 21 : 22, v11);
    for (double lp : {1.0, 0.6, -0.5}) {
      SCOPED_TRACE(cat("length_penalty ", lp));
      GenerationConfig c = config_for(*f.model, 7);
      c.num_beams = 3;
      c.num_return_sequences = 3;
      c.length_penalty = lp;
      const auto out = decoding::generate(*f.model, f.ids, f.mask, c);
      for (int64_t r = 0; r < 3; ++r) {
        const auto ref = naive_beam_search(*f.model, f.ids[r], f.mask[r], 3, 7, lp, 3);
        ASSERT_EQ(out[r].size(), ref.size()) << "input " << r;
        for (size_t i = 0; i < ref.size(); ++i) {
          EXPECT_EQ(out[r][i].tokens, ref[i].tokens) << "input " << r << " sequence " << i;
          EXPECT_NEAR(out[r][i].score, ref[i].score, 5e-5);  // float32 sums of other roundings
          // Scores: token log-probabilities are the teacher-forced ones, they sum to the
          // beam's sum, and the score is that sum over length^length_penalty.
          const Sequence& s = out[r][i];
          const auto tf = teacher_forced(*f.model, f.ids[r], f.mask[r], s.tokens);
          for (size_t t = 0; t < tf.size(); ++t) EXPECT_NEAR(s.token_logprobs[t], tf[t], 1e-5);
          EXPECT_NEAR(sum_of(s.token_logprobs), s.logprob_sum, 1e-4);
          EXPECT_NEAR(s.score, s.logprob_sum / std::pow(static_cast<double>(s.tokens.size()), lp),
                      1e-5);
        }
        for (size_t i = 1; i < out[r].size(); ++i) EXPECT_GE(out[r][i - 1].score, out[r][i].score);
      }
    }
  }
}

// Long enough that the self-attention caches outgrow their first rooms (nn/attention_cache.h),
// with rows ending after that (greedy drops them, beam search reorders at every step): every
// token's log-probability is still the teacher-forced one.
TEST(Decoding, LongGenerationsThroughGrowingCachesEqualTeacherForcing) {
  Fixture f = make_fixture(30, 11);
  for (int64_t beams : {1, 3}) {
    SCOPED_TRACE(cat(beams, " beams"));
    GenerationConfig c = config_for(*f.model, 45);
    c.min_new_tokens = 34;
    c.num_beams = beams;
    c.num_return_sequences = beams;
    const auto out = decoding::generate(*f.model, f.ids, f.mask, c);
    size_t longest = 0;
    for (int64_t r = 0; r < 3; ++r)
      for (const Sequence& s : out[r]) {
        longest = std::max(longest, s.tokens.size());
        // Greedy's log-probabilities are those of the processed scores (</s> banned, then
        // normalised); beam search's are normalised first (transformers' order).
        const auto tf = teacher_forced(*f.model, f.ids[r], f.mask[r], s.tokens,
                                       beams == 1 ? c.min_new_tokens : 0);
        for (size_t t = 0; t < tf.size(); ++t)
          ASSERT_NEAR(s.token_logprobs[t], tf[t], 1e-5) << "input " << r << " token " << t;
      }
    EXPECT_GT(longest, 2u * nn::AttentionCache::kMinRoom);
  }
}

TEST(Decoding, EarlyStoppingTrueStopsAtNumBeamsFinished) {
  // With early_stopping true an input is done as soon as num_beams hypotheses have finished;
  // its result can only be worse or equal (by score) than with "never", which searches on.
  Fixture f = make_fixture(30, 5);
  GenerationConfig c = config_for(*f.model, 8);
  c.num_beams = 2;
  c.early_stopping = "true";
  const auto quick = decoding::generate(*f.model, f.ids, f.mask, c);
  c.early_stopping = "never";
  const auto full = decoding::generate(*f.model, f.ids, f.mask, c);
  for (int64_t r = 0; r < 3; ++r) EXPECT_LE(quick[r][0].score, full[r][0].score + 1e-6);
}

TEST(Decoding, FixedWorkRunsEveryStepWithTheSameTokens) {
  Fixture f = make_fixture(40, 8);
  GenerationConfig c = config_for(*f.model, 9);
  const auto normal = decoding::generate(*f.model, f.ids, f.mask, c);
  decoding::DecodeOptions o;
  o.stop_when_all_finished = false;
  int64_t steps = 0;
  o.on_step = [&](int64_t step, const torch::Tensor& tokens) {
    EXPECT_EQ(step, steps++);
    EXPECT_EQ(tokens.size(0), 3);
  };
  const auto fixed = decoding::generate(*f.model, f.ids, f.mask, c, o);
  EXPECT_EQ(steps, 9);
  for (int64_t r = 0; r < 3; ++r) EXPECT_EQ(normal[r][0].tokens, fixed[r][0].tokens);
  c.num_beams = 4;
  steps = 0;
  o.on_step = [&](int64_t, const torch::Tensor& tokens) {
    ++steps;
    EXPECT_EQ(tokens.size(0), 12);
  };
  decoding::generate(*f.model, f.ids, f.mask, c, o);
  EXPECT_EQ(steps, 9);
}

}  // namespace
}  // namespace compacter

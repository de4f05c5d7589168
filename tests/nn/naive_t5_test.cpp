// Tests of the test oracle itself: the naive double-precision T5 (tests/support/naive_t5.h) against
// Hugging Face's outputs for data/tiny-t5, its position buckets against HF's float32 arithmetic,
// and the raw safetensors / JSON readers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "compacter/io/t5_config.h"
#include "support/naive_t5.h"
#include "support/raw_safetensors.h"
#include "support/tensor_near.h"
#include "support/test_support.h"

namespace compacter::testing {
namespace {

double naive_max_abs_diff(const std::vector<double>& a, const torch::Tensor& b) {
  torch::Tensor c = b.to(torch::kDouble).contiguous();
  EXPECT_EQ(static_cast<int64_t>(a.size()), c.numel());
  const double* p = c.data_ptr<double>();
  double m = 0;
  for (size_t i = 0; i < a.size() && static_cast<int64_t>(i) < c.numel(); ++i)
    m = std::max(m, std::abs(a[i] - p[i]));
  return m;
}

std::vector<int64_t> sizes(const torch::Tensor& t) {
  return {t.sizes().begin(), t.sizes().end()};
}

// The oracle's flat values as a tensor of `shape` (flat when the counts disagree, so that
// EXPECT_TENSOR_NEAR reports the shapes instead of view() throwing).
torch::Tensor as_tensor(const std::vector<double>& values, const std::vector<int64_t>& shape) {
  torch::Tensor t = torch::tensor(values, torch::kDouble);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n == t.numel() ? t.view(shape) : t;
}

// HF T5Attention._relative_position_bucket, transcribed op by op with torch float32 tensors.
torch::Tensor hf_bucket(torch::Tensor rel, bool bidirectional, int64_t nb, int64_t md) {
  torch::Tensor ret = torch::zeros_like(rel);
  if (bidirectional) {
    nb /= 2;
    ret = ret + (rel > 0).to(torch::kLong) * nb;
    rel = torch::abs(rel);
  } else {
    rel = -torch::min(rel, torch::zeros_like(rel));
  }
  const int64_t me = nb / 2;
  torch::Tensor large = me + (torch::log(rel.to(torch::kFloat) / me) /
                              std::log(static_cast<double>(md) / me) * (nb - me))
                                 .to(torch::kLong);
  large = torch::min(large, torch::full_like(large, nb - 1));
  return ret + torch::where(rel < me, rel, large);
}

TEST(NaiveT5Bucket, HandComputedTable) {
  // Bidirectional, 32 buckets, max distance 128: 16 buckets per sign (offset 16 when rel > 0),
  // max_exact 8, large n -> 8 + int(ln(n / 8) / ln(16) * 8), capped at 15.
  //   n = 8:   ln(1) = 0                                  -> 8
  //   n = 15:  ln(1.875) / ln(16) * 8 = 0.62861 / 2.77259 * 8 = 1.814 -> 9
  //   n = 16:  ln(2) / ln(16) * 8 = 2 exactly (float32 gives 2 too) -> 10
  //   n = 20:  ln(2.5) / ln(16) * 8 = 0.91629 / 2.77259 * 8 = 2.644   -> 10
  //   n = 127: ln(15.875) / ln(16) * 8 = 7.977                        -> 15
  //   n = 128: 8 -> 16, capped at 15
  const std::vector<std::pair<int64_t, int64_t>> bidi = {
      {0, 0},   {1, 17},   {-1, 1},  {7, 23},   {-7, 7},   {8, 24},    {-8, 8},   {15, 25},
      {16, 26}, {-16, 10}, {20, 26}, {-20, 10}, {127, 31}, {-127, 15}, {128, 31}, {-1000, 15}};
  for (const auto& [rel, bucket] : bidi)
    EXPECT_EQ(naive_relative_position_bucket(rel, true, 32, 128), bucket) << "rel " << rel;
  // Causal, 32 buckets, 128: n = max(-rel, 0), max_exact 16, large n ->
  // 16 + int(ln(n / 16) / ln(8) * 16), capped at 31.
  //   n = 20:  ln(1.25) / ln(8) * 16 = 0.22314 / 2.07944 * 16 = 1.717  -> 17
  //   n = 32:  ln(2) / ln(8) * 16 = 5.333                             -> 21
  //   n = 100: ln(6.25) / ln(8) * 16 = 1.83258 / 2.07944 * 16 = 14.10  -> 30
  //   n = 127: ln(7.9375) / ln(8) * 16 = 15.94                        -> 31
  //   n = 128: 16 -> 32, capped at 31
  const std::vector<std::pair<int64_t, int64_t>> causal = {
      {0, 0},    {5, 0},     {-1, 1},    {-15, 15},  {-16, 16},  {-20, 17},
      {-32, 21}, {-100, 30}, {-127, 31}, {-128, 31}, {-5000, 31}};
  for (const auto& [rel, bucket] : causal)
    EXPECT_EQ(naive_relative_position_bucket(rel, false, 32, 128), bucket) << "rel " << rel;
}

// The naive bucket must equal HF's float32 evaluation (here libtorch's own float32 ops) for every
// rel in [-1000, 1000] and many bucket / distance settings. Also counts where a plain double
// evaluation would differ (only where the exact value is an integer, never for 32 / 128).
TEST(NaiveT5Bucket, MatchesTorchFloat32) {
  const torch::Tensor rel = torch::arange(-1000, 1001, torch::kLong);
  std::vector<int64_t> distances;
  for (int64_t md = 2; md <= 64; ++md) distances.push_back(md);
  for (int64_t md : {100, 128, 256, 1000}) distances.push_back(md);
  int64_t checked = 0, double_differs = 0;
  for (int64_t nb = 2; nb <= 128; ++nb)
    for (int64_t md : distances)
      for (bool bidirectional : {true, false}) {
        const int64_t half = bidirectional ? nb / 2 : nb;
        if (half / 2 < 1 || md <= half / 2) continue;  // HF needs max_exact >= 1, max_distance > it
        const torch::Tensor expected = hf_bucket(rel, bidirectional, nb, md);
        const int64_t* e = expected.data_ptr<int64_t>();
        for (int64_t i = 0; i < rel.numel(); ++i) {
          const int64_t r = i - 1000;
          ASSERT_EQ(naive_relative_position_bucket(r, bidirectional, nb, md), e[i])
              << "rel " << r << " buckets " << nb << " max_distance " << md << " bidirectional "
              << bidirectional;
          ++checked;
          const int64_t n = bidirectional ? std::abs(r) : std::max<int64_t>(-r, 0);
          const int64_t me = half / 2;
          if (n >= me) {
            const double v =
                std::log(static_cast<double>(n) / me) / std::log(static_cast<double>(md) / me);
            const int64_t b = std::min(me + static_cast<int64_t>(v * (half - me)), half - 1);
            const int64_t naive = naive_relative_position_bucket(r, bidirectional, nb, md);
            if ((bidirectional && r > 0 ? half : 0) + b != naive) {
              ++double_differs;
              EXPECT_FALSE(nb == 32 && md == 128) << "rel " << r;
            }
          }
        }
      }
  std::cout << "[ naive    ] buckets checked: " << checked
            << ", where plain double would differ: " << double_differs << "\n";
}

TEST(NaiveT5ShiftRight, LikeHuggingFace) {
  const torch::Tensor labels = torch::tensor({31, 250, 1, 77, 1, -100}, torch::kLong).view({2, 3});
  const torch::Tensor want = torch::tensor({0, 31, 250, 0, 77, 1}, torch::kLong).view({2, 3});
  EXPECT_TRUE(torch::equal(naive_shift_right(labels, 0), want));
  // -100 moved into the input becomes pad; the start id is configurable.
  const torch::Tensor mid = torch::tensor({5, -100, 7, 8}, torch::kLong).view({1, 4});
  EXPECT_TRUE(torch::equal(naive_shift_right(mid, 3),
                           torch::tensor({3, 5, 0, 7}, torch::kLong).view({1, 4})));
  EXPECT_TRUE(torch::equal(naive_shift_right(mid, 3, 9),
                           torch::tensor({3, 5, 9, 7}, torch::kLong).view({1, 4})));
}

TEST(NaiveT5RawReader, ReferenceJsonMatchesSafetensors) {
  REQUIRE_SHARED("data/tiny-t5/reference.safetensors");
  REQUIRE_SHARED("data/tiny-t5/reference.json");
  const auto st = raw_load_safetensors(shared_path("data/tiny-t5/reference.safetensors"));
  const auto js = raw_load_reference_json(shared_path("data/tiny-t5/reference.json"));
  ASSERT_EQ(st.size(), 7u);
  ASSERT_EQ(js.size(), st.size());
  for (const auto& [name, t] : st) {
    ASSERT_TRUE(js.count(name)) << name;
    EXPECT_EQ(js.at(name).scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(js.at(name), t)) << name;  // JSON holds the exact float32 values
  }
  EXPECT_EQ(sizes(st.at("loss")), std::vector<int64_t>{});
  EXPECT_EQ(sizes(st.at("logits")), (std::vector<int64_t>{2, 3, 512}));
  EXPECT_EQ(st.at("logits")[0][0][0].item<float>(), 2.979976177215576f);
  EXPECT_TRUE(torch::equal(naive_shift_right(st.at("labels"), 0), st.at("decoder_input_ids")));
}

TEST(NaiveT5RawReader, TinyModelWeights) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  const auto w = raw_load_safetensors(shared_path("data/tiny-t5/model.safetensors"));
  EXPECT_EQ(w.size(), 47u);
  int64_t params = 0;
  for (const auto& [name, t] : w) {
    EXPECT_EQ(t.scalar_type(), torch::kFloat) << name;
    params += t.numel();
  }
  EXPECT_EQ(params, 197632);  // README
  EXPECT_EQ(sizes(w.at("shared.weight")), (std::vector<int64_t>{512, 64}));
  EXPECT_THROW(raw_load_safetensors(shared_path("data/tiny-t5/config.json")), std::exception);
}

TEST(NaiveT5Reference, MatchesHuggingFaceOnTinyT5) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  REQUIRE_SHARED("data/tiny-t5/reference.safetensors");
  REQUIRE_SHARED("data/tiny-t5/reference.json");
  const T5Config cfg = load_t5_config(shared_path("data/tiny-t5/config.json"));
  const auto weights = raw_load_safetensors(shared_path("data/tiny-t5/model.safetensors"));
  const auto from_st = raw_load_safetensors(shared_path("data/tiny-t5/reference.safetensors"));
  const auto from_js = raw_load_reference_json(shared_path("data/tiny-t5/reference.json"));
  std::vector<NaiveT5Output> outs;
  for (const auto* ref : {&from_st, &from_js}) {
    const NaiveT5Output out =
        naive_t5_forward(cfg, weights, ref->at("input_ids"), ref->at("attention_mask"),
                         ref->at("decoder_input_ids"), ref->at("labels"));
    EXPECT_EQ(out.logits_shape, sizes(ref->at("logits")));
    EXPECT_EQ(out.encoder_shape, sizes(ref->at("encoder_last_hidden_state")));
    const double d_logits = naive_max_abs_diff(out.logits, ref->at("logits"));
    const double d_enc =
        naive_max_abs_diff(out.encoder_last_hidden_state, ref->at("encoder_last_hidden_state"));
    const double d_loss = std::abs(out.loss - ref->at("loss").item<double>());
    std::cout << "[ naive    ] max |naive - HF|: logits " << d_logits << ", encoder " << d_enc
              << ", loss " << d_loss << "\n";
    EXPECT_TENSOR_NEAR(as_tensor(out.logits, out.logits_shape), ref->at("logits"), 2e-6);
    EXPECT_TENSOR_NEAR(as_tensor(out.encoder_last_hidden_state, out.encoder_shape),
                       ref->at("encoder_last_hidden_state"), 2e-6);
    EXPECT_LT(d_loss, 2e-6);
    outs.push_back(out);
  }
  EXPECT_EQ(outs[0].logits, outs[1].logits);  // same inputs either way
  EXPECT_EQ(outs[0].loss, outs[1].loss);

  // Without labels there is no loss; without a mask every token is attended to, which for the
  // first (unpadded) sequence changes nothing.
  const NaiveT5Output no_labels =
      naive_t5_forward(cfg, weights, from_st.at("input_ids"), torch::Tensor(),
                       from_st.at("decoder_input_ids"), torch::Tensor());
  EXPECT_TRUE(std::isnan(no_labels.loss));
  const int64_t row = 3 * 512;
  EXPECT_EQ(std::vector<double>(no_labels.logits.begin(), no_labels.logits.begin() + row),
            std::vector<double>(outs[0].logits.begin(), outs[0].logits.begin() + row));
}

// Properties that hold for any T5: padding (masked) keys change nothing, decoder position i sees
// only decoder tokens <= i, and the weights' dtype does not matter. Run on an odd config (gated
// gelu_new, untied head, 3 encoder / 1 decoder layers, 8 buckets / max distance 6).
TEST(NaiveT5Random, PaddingCausalityAndDtype) {
  T5Config cfg;
  cfg.vocab_size = 40;
  cfg.d_model = 12;
  cfg.d_kv = 5;
  cfg.d_ff = 20;
  cfg.num_layers = 3;
  cfg.num_decoder_layers = 1;
  cfg.num_heads = 3;
  cfg.relative_attention_num_buckets = 8;
  cfg.relative_attention_max_distance = 6;
  cfg.feed_forward_proj = "gated-gelu";
  cfg.tie_word_embeddings = false;
  cfg.validate();
  const auto w = naive_random_t5_weights(cfg, 7);
  EXPECT_TRUE(w.count("lm_head.weight"));
  EXPECT_TRUE(w.count("decoder.block.0.layer.2.DenseReluDense.wi_1.weight"));
  EXPECT_TRUE(
      torch::equal(w.at("shared.weight"), naive_random_t5_weights(cfg, 7).at("shared.weight")));
  EXPECT_FALSE(
      torch::equal(w.at("shared.weight"), naive_random_t5_weights(cfg, 8).at("shared.weight")));

  const torch::Tensor ids = torch::tensor({5, 9, 13, 2, 1}, torch::kLong).view({1, 5});
  const torch::Tensor dec = torch::tensor({0, 4, 7, 11}, torch::kLong).view({1, 4});
  const torch::Tensor labels = torch::tensor({4, 7, 11, 1}, torch::kLong).view({1, 4});
  const NaiveT5Output base = naive_t5_forward(cfg, w, ids, torch::ones({1, 5}), dec, labels);
  ASSERT_TRUE(std::isfinite(base.loss));
  for (double v : base.logits) ASSERT_TRUE(std::isfinite(v));

  // Two padding tokens (mask 0) appended: the 5 real positions and the logits do not move.
  const torch::Tensor padded_ids = torch::tensor({5, 9, 13, 2, 1, 0, 0}, torch::kLong).view({1, 7});
  const torch::Tensor padded_mask = torch::tensor({1, 1, 1, 1, 1, 0, 0}, torch::kLong).view({1, 7});
  const NaiveT5Output pad = naive_t5_forward(cfg, w, padded_ids, padded_mask, dec, labels);
  EXPECT_TENSOR_NEAR(as_tensor(pad.encoder_last_hidden_state, pad.encoder_shape).narrow(1, 0, 5),
                     as_tensor(base.encoder_last_hidden_state, base.encoder_shape), 1e-12);
  EXPECT_TENSOR_NEAR(as_tensor(pad.logits, pad.logits_shape),
                     as_tensor(base.logits, base.logits_shape), 1e-12);

  // Changing decoder token 2 leaves positions 0 and 1 alone and moves position 2.
  const torch::Tensor dec2 = torch::tensor({0, 4, 30, 11}, torch::kLong).view({1, 4});
  const NaiveT5Output changed = naive_t5_forward(cfg, w, ids, torch::Tensor(), dec2, labels);
  const size_t v = cfg.vocab_size;
  EXPECT_TENSOR_NEAR(as_tensor(changed.logits, changed.logits_shape).narrow(1, 0, 2),
                     as_tensor(base.logits, base.logits_shape).narrow(1, 0, 2), 1e-12);
  EXPECT_GT(std::abs(changed.logits[2 * v] - base.logits[2 * v]), 1e-6);

  // Double weights give the same numbers as float32 ones (they are converted to double anyway).
  std::map<std::string, torch::Tensor> w64;
  for (const auto& [name, t] : w) w64[name] = t.to(torch::kDouble);
  EXPECT_EQ(naive_t5_forward(cfg, w64, ids, torch::Tensor(), dec, labels).logits, base.logits);

  // A missing weight is reported by name.
  auto missing = w;
  missing.erase("encoder.final_layer_norm.weight");
  try {
    naive_t5_forward(cfg, missing, ids, torch::Tensor(), dec, labels);
    ADD_FAILURE() << "expected a throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("encoder.final_layer_norm.weight"), std::string::npos);
  }
}

}  // namespace
}  // namespace compacter::testing

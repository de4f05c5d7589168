// (IA)^3 (peft/ia3.h) against independent references: parameter counts worked out by hand from
// the T5 configs, the trainable set with PEFT's names and shapes, the identity of fresh (all-one)
// vectors with the base model, the forward against a plain model whose k / v rows and wo columns
// were scaled by naive loops, wi_1 (mt5's placement) against wo on the same vector,
// finite-difference gradients, merging and bad options.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <set>
#include <string>

#include "compacter/core/error.h"
#include "compacter/io/t5_config.h"
#include "compacter/nn/t5.h"
#include "compacter/peft/ia3.h"
#include "compacter/peft/methods.h"
#include "support/finite_difference.h"
#include "support/tensor_near.h"
#include "support/tiny_t5.h"

namespace compacter::peft::ia3_test {
namespace {

nn::T5Model tiny(bool v1_1 = false, uint64_t seed = 1) {
  testing::TinyT5 shape;
  shape.v1_1 = v1_1;
  nn::T5Model model = testing::tiny_t5(shape, seed);
  model->eval();
  return model;
}

struct Inputs {
  torch::Tensor ids = torch::tensor({{3, 7, 9, 1}, {4, 5, 1, 0}}, torch::kLong);
  torch::Tensor mask = (ids != 0).to(torch::kLong);
  torch::Tensor labels = torch::tensor({{6, 2, 1}, {8, 1, -100}}, torch::kLong);
};

torch::Tensor logits_of(nn::T5ModelImpl& model, const Inputs& in = {}) {
  torch::NoGradGuard no_grad;
  return model.forward(in.ids, in.mask, {}, in.labels).logits;
}

int64_t count_on(const std::string& config, const std::string& targets) {
  T5Config c = builtin_t5_config(config);
  c.vocab_size = 32100;
  nn::T5Model model(c, false);
  PeftOptions o = method_defaults("ia3");
  if (!targets.empty()) o.target_modules = targets;
  attach("ia3", o, *model, 0);
  const ParameterBreakdown b = parameter_breakdown(*model, "ia3");
  EXPECT_EQ(b.trainable, b.adapters);
  EXPECT_EQ(b.added, b.trainable);
  return b.trainable;
}

TEST(PeftIa3, CountsOfT5SmallAndT5Base) {
  // One value per key / value feature of every attention and per hidden feature of every
  // feed-forward. t5-base: 36 attentions x 2 x 768 + 24 feed-forwards x 3,072 = 129,024.
  // t5-small: 18 x 2 x 512 + 12 x 2,048 = 43,008.
  EXPECT_EQ(count_on("t5-base", ""), 129024);
  EXPECT_EQ(count_on("t5-small", ""), 43008);
  EXPECT_EQ(count_on("t5-small", "k,v"), 18432);
  // t5-v1_1-small (gated, 8 + 8 blocks, 6 heads x 64 = 384, d_ff 1,024), mt5's wi_1 placement:
  // 24 x 2 x 384 + 16 x 1,024 = 34,816, as many as with wo.
  EXPECT_EQ(count_on("t5-v1_1-small", "k,v,wi_1"), 34816);
  EXPECT_EQ(count_on("t5-v1_1-small", ""), 34816);
}

TEST(PeftIa3, TrainsExactlyTheVectorsUnderPeftNamesAndShapes) {
  auto model = tiny();
  attach("ia3", method_defaults("ia3"), *model, 0);
  std::set<std::string> trainable;
  for (const auto& [name, p] : trainable_named_parameters(*model)) trainable.insert(name);
  EXPECT_EQ(trainable.size(), 6u * 2 + 4u);  // 6 attentions x (k, v) + 4 feed-forwards
  auto params = model->named_parameters();
  // PEFT's shapes: [out, 1] for an output scale, [1, in] for a feed-forward module's input.
  EXPECT_EQ(params["encoder.block.0.layer.0.SelfAttention.k.ia3_l"].sizes(),
            torch::IntArrayRef({8, 1}));
  EXPECT_EQ(params["decoder.block.1.layer.1.EncDecAttention.v.ia3_l"].sizes(),
            torch::IntArrayRef({8, 1}));
  EXPECT_EQ(params["decoder.block.0.layer.2.DenseReluDense.wo.ia3_l"].sizes(),
            torch::IntArrayRef({1, 16}));
  for (const std::string& name : trainable) {
    EXPECT_EQ(name.substr(name.size() - 6), ".ia3_l");
    EXPECT_TRUE(torch::equal(params[name], torch::ones_like(params[name]))) << name;
  }
  EXPECT_FALSE(model->layer_norms()[0]->weight.requires_grad());
}

TEST(PeftIa3, FreshVectorsAreTheBaseModel) {
  for (bool v1_1 : {false, true}) {
    for (const std::string targets : {"k,v,wo", v1_1 ? "v,wi_1" : "k"}) {
      auto model = tiny(v1_1);
      const torch::Tensor base = logits_of(*model);
      PeftOptions o = method_defaults("ia3");
      o.target_modules = targets;
      attach("ia3", o, *model, 0);
      EXPECT_TRUE(torch::equal(logits_of(*model), base)) << v1_1 << " " << targets;
    }
  }
}

// Scaling k / v outputs and wo inputs equals scaling the rows of W_k, W_v and the columns of
// W_o in a plain model (naive loops).
TEST(PeftIa3, ForwardScalesKeysValuesAndTheHiddenActivation) {
  for (bool v1_1 : {false, true}) {
    SCOPED_TRACE(v1_1);
    auto model = tiny(v1_1, 2);
    model->to(torch::kDouble);
    auto reference = tiny(v1_1, 2);
    reference->to(torch::kDouble);
    attach("ia3", method_defaults("ia3"), *model, 0);
    torch::NoGradGuard no_grad;
    torch::manual_seed(3);
    for (auto& p : trainable_parameters(*model)) p.uniform_(0.5, 1.5);
    auto params = model->named_parameters();
    auto ref = reference->named_parameters();
    int scaled = 0;
    for (const auto& item : params) {
      const std::string& name = item.key();
      if (name.size() < 6 || name.substr(name.size() - 6) != ".ia3_l") continue;
      const std::string weight = name.substr(0, name.size() - 6) + ".weight";
      torch::Tensor w = ref[weight];
      auto wa = w.accessor<double, 2>();
      const torch::Tensor l = item.value().reshape({-1});
      auto la = l.accessor<double, 1>();
      const bool columns = name.find(".wo.") != std::string::npos;
      for (int64_t i = 0; i < w.size(0); ++i)
        for (int64_t j = 0; j < w.size(1); ++j) wa[i][j] *= la[columns ? j : i];
      ++scaled;
    }
    EXPECT_EQ(scaled, 16);
    const torch::Tensor got = logits_of(*model), want = logits_of(*reference);
    EXPECT_TENSOR_NEAR(got, want, 1e-10, 1e-10);
    auto base = tiny(v1_1, 2);
    base->to(torch::kDouble);
    EXPECT_FALSE(torch::allclose(got, logits_of(*base), 1e-3, 1e-3));
  }
}

// In a gated feed-forward, act(wi_0 x) * (wi_1 x) scaled at wi_1's output (mt5's placement) is
// the hidden activation scaled at wo's input (t5's): the same vector gives the same model.
TEST(PeftIa3, Wi1AndWoScaleTheSameActivation) {
  torch::Tensor outputs[2];
  for (int k = 0; k < 2; ++k) {
    auto model = tiny(true, 4);
    model->to(torch::kDouble);
    PeftOptions o = method_defaults("ia3");
    o.target_modules = k == 0 ? "wo" : "wi_1";
    attach("ia3", o, *model, 0);
    torch::NoGradGuard no_grad;
    torch::manual_seed(5);
    for (auto& p : trainable_parameters(*model))
      p.copy_(torch::rand({16}).add(0.5).view(p.sizes()));
    outputs[k] = logits_of(*model);
  }
  EXPECT_TENSOR_NEAR(outputs[0], outputs[1], 1e-12, 1e-12);
}

TEST(PeftIa3, GradientsMatchFiniteDifferences) {
  const Inputs in;
  for (bool v1_1 : {false, true}) {
    SCOPED_TRACE(v1_1);
    auto model = tiny(v1_1, 6);
    model->to(torch::kDouble);
    attach("ia3", method_defaults("ia3"), *model, 0);
    auto params = trainable_named_parameters(*model);
    {
      torch::NoGradGuard no_grad;
      torch::manual_seed(8);
      for (auto& [name, p] : params) p.uniform_(0.5, 1.5);
    }
    auto loss = [&] { return model->forward(in.ids, in.mask, {}, in.labels).loss; };
    testing::GradientCheckOptions fd;
    fd.eps = 1e-5;
    fd.atol = 1e-6;  // relative to the largest gradient entry
    fd.relative_to_largest_gradient = true;
    fd.samples_per_tensor = 3;
    const auto check = testing::check_gradients(params, loss, fd);
    EXPECT_GE(check.checked, 40);
    EXPECT_TRUE(check.result());
  }
}

TEST(PeftIa3, MergedModelIsPlainT5WithTheSameLogits) {
  for (bool v1_1 : {false, true}) {
    for (const std::string targets : {"k,v,wo", v1_1 ? "k,wi_1" : "v"}) {
      SCOPED_TRACE(targets);
      auto model = tiny(v1_1, 9);
      PeftOptions o = method_defaults("ia3");
      o.target_modules = targets;
      attach("ia3", o, *model, 0);
      {
        torch::NoGradGuard no_grad;
        torch::manual_seed(11);
        for (auto& p : trainable_parameters(*model)) p.uniform_(0.5, 1.5);
      }
      // In float64, so that the check sees the merge and not fp32's rounding (folding a scale
      // into a weight rounds differently from scaling the activation: ~2e-5 on these logits in
      // fp32, depending on the BLAS kernels).
      model->to(torch::kDouble);
      nn::T5Model merged = merge_into_base(*model, "ia3");
      EXPECT_EQ(count_parameters(*merged), count_parameters(*tiny(v1_1)));
      const torch::Tensor want = logits_of(*model), got = logits_of(*merged);
      EXPECT_EQ(got.scalar_type(), torch::kDouble);
      EXPECT_TENSOR_NEAR(got, want, 1e-10);
      auto base = tiny(v1_1, 9);
      base->to(torch::kDouble);
      EXPECT_FALSE(torch::allclose(want, logits_of(*base), 1e-3, 1e-3));
    }
  }
}

TEST(PeftIa3, RejectsBadTargets) {
  const std::vector<std::tuple<std::string, bool, std::string>> cases = {
      {"q", false, "\"q\" is not supported"},
      {"", false, "target_modules is empty"},
      {"wo,wi_1", true, "give one"},
      {"wi_1", false, "wi_1 exists only in a gated feed-forward"}};
  for (const auto& [targets, v1_1, fragment] : cases) {
    auto model = tiny(v1_1);
    PeftOptions o = method_defaults("ia3");
    o.target_modules = targets;
    try {
      attach("ia3", o, *model, 0);
      ADD_FAILURE() << "no error for " << targets;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  }
  auto twice = tiny();
  attach("ia3", method_defaults("ia3"), *twice, 0);
  EXPECT_THROW(attach("ia3", method_defaults("ia3"), *twice, 0), Error);
}

}  // namespace
}  // namespace compacter::peft::ia3_test

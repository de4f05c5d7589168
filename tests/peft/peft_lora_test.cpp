// LoRA (peft/lora.h) against independent references: parameter counts worked out by hand from
// the T5 configs, the trainable set and its PEFT names and shapes, the identity of a fresh LoRA
// (B = 0) with the base model, the forward against a model whose weights are W + (alpha/r) B A
// summed by naive loops, PEFT's init bound, dropout, finite-difference gradients, merging
// (in memory, and through merge_adapter to a Hugging Face folder) and bad options.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <string>

#include "compacter/core/error.h"
#include "compacter/io/t5_config.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/nn/t5.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/lora.h"
#include "compacter/peft/merge.h"
#include "compacter/peft/methods.h"
#include "support/finite_difference.h"
#include "support/tensor_near.h"
#include "support/test_support.h"
#include "support/tiny_t5.h"

namespace compacter::peft::lora_test {
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

// The trainable count of LoRA on a built-in config with the 32,100-row vocabulary (uninitialised
// weights: counting reads no values).
int64_t count_on(const std::string& config, const PeftOptions& o) {
  T5Config c = builtin_t5_config(config);
  c.vocab_size = 32100;
  nn::T5Model model(c, false);
  attach("lora", o, *model, 0);
  const ParameterBreakdown b = parameter_breakdown(*model, "lora");
  EXPECT_EQ(b.trainable, b.adapters);
  EXPECT_EQ(b.added, b.trainable);
  return b.trainable;
}

TEST(PeftLora, CountsOfT5SmallAndT5Base) {
  // r (in + out) per target layer. t5-base: 12 encoder blocks (self-attention) and 12 decoder
  // blocks (self- and cross-attention) = 36 attentions, q and v both 768 -> 768:
  // 36 x 2 x 8 x (768 + 768) = 884,736. t5-small: 6 + 12 = 18 attentions, 512 -> 512:
  // 18 x 2 x 8 x 1,024 = 294,912.
  const PeftOptions defaults = method_defaults("lora");
  EXPECT_EQ(count_on("t5-base", defaults), 884736);
  EXPECT_EQ(count_on("t5-small", defaults), 294912);
  // r = 4 on every linear of t5-small: attentions 18 x 4 x 4 x 1,024 = 294,912; feed-forwards
  // 12 x 4 x ((512 + 2,048) + (2,048 + 512)) = 245,760; together 540,672.
  PeftOptions all = defaults;
  all.rank = 4;
  all.target_modules = "q,k,v,o,wi,wo";
  EXPECT_EQ(count_on("t5-small", all), 540672);
  // The backbone stays the paper's denominator (spec §7.1).
  T5Config c = builtin_t5_config("t5-small");
  c.vocab_size = 32100;
  nn::T5Model model(c, false);
  attach("lora", defaults, *model, 0);
  EXPECT_EQ(parameter_breakdown(*model).backbone, 60492288);
}

TEST(PeftLora, TrainsExactlyTheFactorsUnderPeftNames) {
  auto model = tiny();
  attach("lora", method_defaults("lora"), *model, 0);
  std::set<std::string> trainable;
  for (const auto& [name, p] : trainable_named_parameters(*model)) trainable.insert(name);
  std::set<std::string> expected;
  for (const std::string stack : {"encoder", "decoder"})
    for (int b = 0; b < 2; ++b) {
      const std::string p = stack + ".block." + std::to_string(b) + ".layer.";
      for (const std::string att : {"0.SelfAttention", "1.EncDecAttention"}) {
        if (stack == "encoder" && att[0] == '1') continue;
        for (const char* m : {".q", ".v"})
          for (const char* f : {".lora_A.weight", ".lora_B.weight"})
            expected.insert(p + att + m + f);
      }
    }
  EXPECT_EQ(trainable, expected);
  auto params = model->named_parameters();
  // A [r, in], B [out, r]; t5's tiny q: 8 -> 2 heads x 4.
  EXPECT_EQ(params["encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"].sizes(),
            torch::IntArrayRef({8, 8}));
  EXPECT_EQ(params["decoder.block.1.layer.1.EncDecAttention.v.lora_B.weight"].sizes(),
            torch::IntArrayRef({8, 8}));
  EXPECT_FALSE(model->shared->weight.requires_grad());
  EXPECT_FALSE(model->layer_norms()[0]->weight.requires_grad());  // PEFT trains the factors only
}

TEST(PeftLora, FreshLoraIsTheBaseModelAndBIsZero) {
  for (bool v1_1 : {false, true}) {
    auto model = tiny(v1_1);
    const torch::Tensor base = logits_of(*model);
    PeftOptions o = method_defaults("lora");
    o.target_modules = v1_1 ? "q,k,v,o,wi_0,wi_1,wo" : "q,k,v,o,wi,wo";
    attach("lora", o, *model, 3);
    EXPECT_TRUE(torch::equal(logits_of(*model), base)) << v1_1;
    for (const auto& item : model->named_parameters()) {
      if (item.key().find(".lora_B.") != std::string::npos) {
        EXPECT_EQ(item.value().abs().max().item<double>(), 0.0) << item.key();
      }
    }
  }
}

TEST(PeftLora, AIsKaimingUniformWithASqrt5AsPeftDrawsIt) {
  // kaiming_uniform_(a = sqrt(5)) on [r, in]: gain sqrt(2 / (1 + 5)), bound gain sqrt(3 / in)
  // = 1 / sqrt(in). libtorch's own kaiming_uniform_ gives the same bound (the reference).
  testing::TinyT5 shape;
  shape.d_model = 64;
  shape.d_kv = 32;
  auto model = testing::tiny_t5(shape, 1);
  attach("lora", method_defaults("lora"), *model, 5);
  const torch::Tensor a =
      model->named_parameters()["encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"];
  ASSERT_EQ(a.sizes(), torch::IntArrayRef({8, 64}));
  const double bound = 1.0 / std::sqrt(64.0);
  torch::manual_seed(0);
  torch::Tensor ref = torch::empty({8, 64});
  torch::nn::init::kaiming_uniform_(ref, std::sqrt(5.0));
  for (const torch::Tensor& t : {a, ref}) {
    EXPECT_LE(t.abs().max().item<double>(), bound);
    EXPECT_GT(t.abs().max().item<double>(), 0.97 * bound);
    EXPECT_NEAR(t.mean().item<double>(), 0.0, 0.05);
    EXPECT_NEAR(t.pow(2).mean().item<double>(), bound * bound / 3.0, 0.2 * bound * bound / 3.0);
  }
  // Another seed draws other values; the same seed the same ones.
  auto again = testing::tiny_t5(shape, 1);
  attach("lora", method_defaults("lora"), *again, 5);
  EXPECT_TRUE(torch::equal(
      again->named_parameters()["encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"], a));
}

// W + (alpha / r) B A with every product summed by a naive loop, in double.
torch::Tensor naive_merged(const torch::Tensor& w, const torch::Tensor& a, const torch::Tensor& b,
                           double scaling) {
  torch::Tensor out = w.to(torch::kDouble).clone();
  auto o = out.accessor<double, 2>();
  const torch::Tensor ad = a.to(torch::kDouble), bd = b.to(torch::kDouble);
  auto aa = ad.accessor<double, 2>();
  auto ba = bd.accessor<double, 2>();
  for (int64_t i = 0; i < out.size(0); ++i)
    for (int64_t j = 0; j < out.size(1); ++j) {
      double sum = 0.0;
      for (int64_t k = 0; k < a.size(0); ++k) sum += ba[i][k] * aa[k][j];
      o[i][j] += scaling * sum;
    }
  return out;
}

// A LoRA model with A and B moved away from their init, and a plain model of the same base
// whose target weights were replaced by naive_merged(): the two compute the same function.
TEST(PeftLora, ForwardIsTheBaseWithWPlusScaledBA) {
  for (bool v1_1 : {false, true}) {
    SCOPED_TRACE(v1_1);
    auto model = tiny(v1_1, 2);
    model->to(torch::kDouble);
    auto reference = tiny(v1_1, 2);
    reference->to(torch::kDouble);
    PeftOptions o = method_defaults("lora");
    o.rank = 3;
    o.lora_alpha = 6.0;  // scaling 2
    o.target_modules = v1_1 ? "q,o,wi_1,wo" : "k,v,wi";
    attach("lora", o, *model, 4);
    torch::NoGradGuard no_grad;
    torch::manual_seed(1);
    for (auto& p : trainable_parameters(*model)) p.normal_(0.0, 0.3);
    auto params = model->named_parameters();
    auto ref_params = reference->named_parameters();
    int replaced = 0;
    for (const auto& item : params) {
      const std::string& name = item.key();
      const auto at = name.find(".lora_A.weight");
      if (at == std::string::npos) continue;
      const std::string path = name.substr(0, at);
      ref_params[path + ".weight"].copy_(naive_merged(params[path + ".weight"], item.value(),
                                                      params[path + ".lora_B.weight"], 2.0));
      ++replaced;
    }
    // 6 attentions (2 encoder, 2 + 2 decoder) and 4 feed-forwards.
    EXPECT_EQ(replaced, v1_1 ? 6 * 2 + 4 * 2 : 6 * 2 + 4);
    const torch::Tensor got = logits_of(*model), want = logits_of(*reference);
    EXPECT_TENSOR_NEAR(got, want, 1e-10, 1e-10);
    auto base = tiny(v1_1, 2);
    base->to(torch::kDouble);
    EXPECT_FALSE(torch::allclose(got, logits_of(*base), 1e-3, 1e-3));
  }
}

// lora_dropout acts on the branch's input in training only: in eval mode a LoRA with dropout
// computes what the same LoRA without dropout does; in training it changes the output while the
// base path (T5's own dropout off here) does not.
TEST(PeftLora, DropoutOnlyInTrainingAndOnlyOnTheBranch) {
  testing::TinyT5 shape;
  T5Config c = testing::tiny_t5_config(shape);
  c.dropout_rate = 0.0;
  torch::Tensor outputs[2][2];  // [lora_dropout 0 | 0.5][eval | train]
  for (int d = 0; d < 2; ++d) {
    nn::T5Model model(c);
    model->init_weights(1);
    PeftOptions o = method_defaults("lora");
    o.lora_dropout = d == 0 ? 0.0 : 0.5;
    attach("lora", o, *model, 2);
    {
      torch::NoGradGuard no_grad;
      torch::manual_seed(3);
      for (auto& p : trainable_parameters(*model)) p.normal_(0.0, 0.5);
    }
    model->eval();
    outputs[d][0] = logits_of(*model);
    model->train();
    torch::manual_seed(4);
    outputs[d][1] = logits_of(*model);
  }
  EXPECT_TRUE(torch::equal(outputs[0][0], outputs[1][0]));
  EXPECT_TRUE(torch::equal(outputs[0][0], outputs[0][1]));
  EXPECT_FALSE(torch::allclose(outputs[1][1], outputs[1][0], 1e-4, 1e-4));
}

// Central differences through a tiny double-precision T5 for every factor of a LoRA on all
// linear layers (v1.0 and gated v1.1).
TEST(PeftLora, GradientsMatchFiniteDifferences) {
  const Inputs in;
  for (bool v1_1 : {false, true}) {
    SCOPED_TRACE(v1_1);
    auto model = tiny(v1_1, 6);
    model->to(torch::kDouble);
    PeftOptions o = method_defaults("lora");
    o.rank = 2;
    o.lora_alpha = 2.0;  // scaling 1: updates of the order of T5's weights, few ReLU kinks crossed
    o.target_modules = v1_1 ? "q,k,v,o,wi_0,wi_1,wo" : "q,k,v,o,wi,wo";
    attach("lora", o, *model, 7);
    auto params = trainable_named_parameters(*model);
    {
      torch::NoGradGuard no_grad;
      torch::manual_seed(8);
      for (auto& [name, p] : params) p.normal_(0.0, 0.3);
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

// A LoRA (q, v and the feed-forward) with factors moved away from their init.
nn::T5Model trained_lora(bool v1_1) {
  nn::T5Model model = tiny(v1_1, 9);
  PeftOptions o = method_defaults("lora");
  o.target_modules = v1_1 ? "q,v,wi_0,wo" : "q,v,wi,wo";
  attach("lora", o, *model, 10);
  torch::NoGradGuard no_grad;
  torch::manual_seed(11);
  for (auto& p : trainable_parameters(*model)) p.normal_(0.0, 0.2);
  return model;
}

TEST(PeftLora, MergedModelIsPlainT5WithTheSameLogits) {
  for (bool v1_1 : {false, true}) {
    SCOPED_TRACE(v1_1);
    nn::T5Model model = trained_lora(v1_1);
    const torch::Tensor before =
        model->named_parameters()["encoder.block.0.layer.0.SelfAttention.q.weight"].clone();
    nn::T5Model merged = merge_into_base(*model, "lora");
    // Plain T5: exactly the Hugging Face tensors, nothing else.
    EXPECT_EQ(count_parameters(*merged), count_parameters(*tiny(v1_1)));
    EXPECT_TRUE(torch::equal(
        model->named_parameters()["encoder.block.0.layer.0.SelfAttention.q.weight"], before));
    const torch::Tensor want = logits_of(*model), got = logits_of(*merged);
    EXPECT_TENSOR_NEAR(got, want, 1e-5);  // allclose(got, want, rtol 0, atol 1e-5)
    EXPECT_FALSE(torch::allclose(want, logits_of(*tiny(v1_1, 9)), 1e-3, 1e-3));
  }
}

TEST(PeftLora, MergeAdapterWritesAHuggingFaceFolder) {
  testing::TempDir dir;
  auto base = tiny();
  nn::save_t5(*base, dir.file("base"));
  testing::write_file(dir.file("base/spiece.model"), "not really a sentencepiece model");
  PeftOptions options = method_defaults("lora");
  options.target_modules = "q,v,wi,wo";
  auto model = nn::load_t5(dir.file("base")).model;
  model->eval();
  attach("lora", options, *model, 10);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(12);
    for (auto& p : trainable_parameters(*model)) p.normal_(0.0, 0.2);
  }
  save_adapter(*model, {"lora", options, 10}, dir.file("adapter"));
  const MergeReport r =
      merge_adapter(dir.file("base"), dir.file("adapter"), dir.file("out"), false);
  EXPECT_EQ(r.method, "lora");
  EXPECT_EQ(r.vocab_rows, 40);
  EXPECT_EQ(testing::read_file(dir.file("out/spiece.model")), "not really a sentencepiece model");
  nn::T5Loaded merged = nn::load_t5(dir.file("out"));
  EXPECT_TRUE(merged.unexpected.empty());
  merged.model->eval();
  const torch::Tensor want = logits_of(*model), got = logits_of(*merged.model);
  EXPECT_TENSOR_NEAR(got, want, 1e-5);  // allclose(got, want, rtol 0, atol 1e-5)
  // Refusals: the output exists; the output is the base; a method that cannot be merged.
  EXPECT_THROW(merge_adapter(dir.file("base"), dir.file("adapter"), dir.file("out"), false), Error);
  EXPECT_NO_THROW(merge_adapter(dir.file("base"), dir.file("adapter"), dir.file("out"), true));
  EXPECT_THROW(merge_adapter(dir.file("base"), dir.file("adapter"), dir.file("base"), true), Error);
  auto prompt = nn::load_t5(dir.file("base")).model;
  attach("prompt-r", method_defaults("prompt-r"), *prompt, 1);
  save_adapter(*prompt, {"prompt-r", method_defaults("prompt-r"), 1}, dir.file("prompt"));
  try {
    merge_adapter(dir.file("base"), dir.file("prompt"), dir.file("out2"), false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("method prompt-r cannot be merged"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("out2")));
}

TEST(PeftLora, RejectsBadOptions) {
  auto expect_error = [](const std::string& targets, int64_t rank, double dropout, bool v1_1,
                         const std::string& fragment) {
    auto model = tiny(v1_1);
    PeftOptions o = method_defaults("lora");
    o.target_modules = targets;
    o.rank = rank;
    o.lora_dropout = dropout;
    try {
      attach("lora", o, *model, 0);
      ADD_FAILURE() << "no error for " << targets << " r=" << rank << " p=" << dropout;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error("q,qq", 8, 0.0, false, "unknown module \"qq\"");
  expect_error("", 8, 0.0, false, "target_modules is empty");
  expect_error("q,wi", 8, 0.0, true, "\"wi\" matches no linear layer");
  expect_error("wi_0", 8, 0.0, false, "\"wi_0\" matches no linear layer");
  expect_error("q", 0, 0.0, false, "rank (r) must be positive");
  expect_error("q", 8, 1.0, false, "lora_dropout must be in [0, 1)");
  auto twice = tiny();
  attach("lora", method_defaults("lora"), *twice, 0);
  EXPECT_THROW(attach("lora", method_defaults("lora"), *twice, 0), Error);
}

}  // namespace
}  // namespace compacter::peft::lora_test

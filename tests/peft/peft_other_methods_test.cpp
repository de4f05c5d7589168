// Full fine-tuning, BitFit, prompt tuning and Intrinsic-SAID on T5 (spec §1.3, §3.10-§3.13, §7.2):
// trainable sets, identities with the base model, counts, and finite-difference gradients.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <set>
#include <string>

#include "compacter/core/error.h"
#include "compacter/nn/t5.h"
#include "compacter/peft/methods.h"
#include "compacter/peft/said.h"
#include "support/finite_difference.h"
#include "support/tensor_near.h"
#include "support/tiny_t5.h"

namespace compacter::peft {
namespace {

nn::T5Model tiny_model(bool v1_1 = false, uint64_t seed = 1) {
  testing::TinyT5 shape;
  shape.v1_1 = v1_1;
  nn::T5Model model = testing::tiny_t5(shape, seed);
  model->eval();
  return model;
}

std::set<std::string> trainable_names(nn::T5ModelImpl& model) {
  std::set<std::string> out;
  for (const auto& p : model.named_parameters())
    if (p.value().requires_grad()) out.insert(p.key());
  return out;
}

struct Batch {
  torch::Tensor ids = torch::tensor({{3, 7, 9, 1}, {4, 5, 1, 0}}, torch::kLong);
  torch::Tensor mask = (ids != 0).to(torch::kLong);
  torch::Tensor labels = torch::tensor({{6, 2, 1}, {8, 1, -100}}, torch::kLong);
};

torch::Tensor logits(nn::T5ModelImpl& model, const Batch& b) {
  torch::NoGradGuard no_grad;
  return model.forward(b.ids, b.mask, {}, b.labels).logits;
}

TEST(PeftOtherMethods, FullTrainsEveryTensorOnce) {
  auto model = tiny_model();
  const int64_t before = count_parameters(*model);
  attach("full", method_defaults("full"), *model, 0);
  EXPECT_EQ(count_trainable(*model), before);
  const auto b = parameter_breakdown(*model);
  EXPECT_EQ(b.backbone, before);
  EXPECT_EQ(b.added, 0);
}

TEST(PeftOtherMethods, BitFitTrainsExactlyTheNewBiases) {
  for (bool v1_1 : {false, true}) {
    SCOPED_TRACE(v1_1);
    auto model = tiny_model(v1_1);
    Batch batch;
    torch::Tensor base = logits(*model, batch);
    attach("bitfit", method_defaults("bitfit"), *model, 0);
    // Zero biases give the base model.
    EXPECT_TRUE(torch::equal(logits(*model, batch), base));
    const auto names = trainable_names(*model);
    std::set<std::string> expected;
    for (const std::string stack : {"encoder", "decoder"}) {
      const bool dec = stack == "decoder";
      for (int blk = 0; blk < 2; ++blk) {
        const std::string p = stack + ".block." + std::to_string(blk) + ".layer.";
        for (const char* w : {"q", "k", "v", "o"}) {
          expected.insert(p + "0.SelfAttention." + w + ".bias");
          if (dec) expected.insert(p + "1.EncDecAttention." + w + ".bias");
        }
        expected.insert(p + "0.layer_norm.bias");
        if (dec) expected.insert(p + "1.layer_norm.bias");
        const std::string ff = p + (dec ? "2" : "1");
        expected.insert(ff + ".layer_norm.bias");
        if (v1_1) {
          expected.insert(ff + ".DenseReluDense.wi_0.bias");
          expected.insert(ff + ".DenseReluDense.wi_1.bias");
        } else {
          expected.insert(ff + ".DenseReluDense.wi.bias");
        }
        expected.insert(ff + ".DenseReluDense.wo.bias");
      }
    }
    expected.insert("lm_head.bias");  // no bias in the two final norms (spec §3.10)
    EXPECT_EQ(names, expected);
    // Each bias changes the output: it is really used. (A key bias shifts every score of a query
    // alike, which the softmax cancels, so it is exempt.)
    for (const auto& p : model->named_parameters()) {
      if (!p.value().requires_grad() || p.key().find(".k.bias") != std::string::npos) continue;
      {
        torch::NoGradGuard no_grad;
        p.value().fill_(0.3);
      }
      EXPECT_FALSE(torch::allclose(logits(*model, batch), base)) << p.key();
      torch::NoGradGuard no_grad;
      p.value().zero_();
    }
  }
}

TEST(PeftOtherMethods, BitFitCountsOfTheSpec) {
  T5Config c = builtin_t5_config("t5-base");
  c.vocab_size = 32100;
  nn::T5Model model(c);
  attach("bitfit", method_defaults("bitfit"), *model, 0);
  const auto b = parameter_breakdown(*model);
  EXPECT_EQ(b.trainable, 280932);  // spec §7.2
  EXPECT_EQ(b.biases, 280932);
  EXPECT_EQ(b.backbone, 222882048);
  EXPECT_NEAR(b.percent(), 0.1260, 5e-5);
  EXPECT_NEAR(b.total_for_tasks(8, false), 1.0101, 5e-5);
  EXPECT_NEAR(b.total_for_tasks(6, false), 1.0076, 5e-5);
  // Table 7: the whole tied lm_head trained as well: 11.187%.
  nn::T5Model wide(c);
  PeftOptions o = method_defaults("bitfit");
  o.train_lm_head = true;
  attach("bitfit", o, *wide, 0);
  EXPECT_NEAR(parameter_breakdown(*wide).percent(), 11.187, 5e-4);
}

TEST(PeftOtherMethods, PromptTuning) {
  auto model = tiny_model();
  Batch batch;
  torch::Tensor base = logits(*model, batch);
  PeftOptions o = method_defaults("prompt-t");
  o.prompt_length = 0;  // a zero-length prompt is the base model
  attach("prompt-t", o, *model, 0);
  EXPECT_TRUE(torch::equal(logits(*model, batch), base));

  auto t = tiny_model();
  o.prompt_length = 5;
  attach("prompt-t", o, *t, 0);
  EXPECT_EQ(trainable_names(*t), (std::set<std::string>{"encoder.prompt.weight"}));
  torch::Tensor prompt = t->named_parameters()["encoder.prompt.weight"];
  EXPECT_TRUE(torch::equal(prompt, t->shared->weight.narrow(0, 0, 5)));  // rows 0..4
  EXPECT_FALSE(t->shared->weight.requires_grad());
  // Encoder output: 5 prompt rows in front; the cross-attention sees them (mask of ones).
  {
    torch::NoGradGuard no_grad;
    auto out = t->forward(batch.ids, batch.mask, {}, batch.labels);
    EXPECT_EQ(out.encoder_last_hidden_state.size(1), 9);
    EXPECT_FALSE(torch::allclose(out.logits, base));
  }

  auto r = tiny_model();
  PeftOptions ro = method_defaults("prompt-r");
  ro.prompt_length = 50;
  attach("prompt-r", ro, *r, 3);
  torch::Tensor pr = r->named_parameters()["encoder.prompt.weight"];
  EXPECT_LE(pr.abs().max().item<double>(), 0.5);
  EXPECT_GT(pr.abs().max().item<double>(), 0.4);
  EXPECT_NEAR(pr.mean().item<double>(), 0.0, 0.05);
  EXPECT_EQ(count_trainable(*r), 50 * 8);

  // t5-base: 100 x 768 = 76,800 = 0.0345% (spec §7.2).
  T5Config c = builtin_t5_config("t5-base");
  c.vocab_size = 32100;
  c.num_layers = 1;  // the count does not depend on depth
  nn::T5Model base_model(c);
  attach("prompt-r", method_defaults("prompt-r"), *base_model, 0);
  EXPECT_EQ(parameter_breakdown(*base_model).prompt, 76800);
  EXPECT_EQ(parameter_breakdown(*base_model).trainable, 76800);
}

TEST(PeftOtherMethods, FwhtIsTheSylvesterHadamardMatrix) {
  torch::Tensor h = torch::ones({1, 1}, torch::kDouble);
  torch::Tensor h2 = torch::tensor({{1.0, 1.0}, {1.0, -1.0}}, torch::kDouble);
  for (int64_t length = 1; length <= 64; length *= 2) {
    torch::Tensor x = torch::randn({length}, torch::kDouble);
    torch::Tensor expected = torch::mv(h, x);
    EXPECT_TENSOR_NEAR(fwht(x), expected, 1e-12, 1e-12) << length;
    h = torch::kron(h, h2);
  }
  // Longer ones (several 6-bit blocks of the implementation) against H[i][j] = (-1)^popcount(i&j),
  // summed naively; the backward pass against the same sum (H^T = H: d(w . Hx)/dx = H w).
  auto naive_h = [](const torch::Tensor& v) {
    const int64_t length = v.size(0);
    std::vector<double> out(static_cast<size_t>(length), 0.0);
    const auto va = v.accessor<double, 1>();
    for (int64_t i = 0; i < length; ++i)
      for (int64_t j = 0; j < length; ++j)
        out[static_cast<size_t>(i)] += (__builtin_popcountll(i & j) % 2 ? -1.0 : 1.0) * va[j];
    return torch::tensor(out, torch::kDouble);
  };
  for (const int64_t length : {128, 4096, 8192}) {
    torch::Tensor x = torch::randn({length}, torch::kDouble);
    EXPECT_TENSOR_NEAR(fwht(x), naive_h(x), 1e-9, 1e-9) << length;
    torch::Tensor xg = x.clone().requires_grad_(true), w = torch::randn({length}, torch::kDouble);
    (fwht(xg) * w).sum().backward();
    EXPECT_TENSOR_NEAR(xg.grad(), naive_h(w), 1e-9, 1e-9) << length;
  }
  EXPECT_THROW(fwht(torch::zeros({6})), Error);
}

TEST(PeftOtherMethods, SaidReparameterisesEveryTensor) {
  // t5-base's structure (shapes shrunk): m = 257 tensors, so 258 lambdas and 19,742 theta values.
  T5Config c = builtin_t5_config("t5-base");
  c.vocab_size = 4;
  c.d_model = 4;
  c.d_kv = 1;
  c.num_heads = 2;
  c.d_ff = 2;
  c.relative_attention_num_buckets = 4;
  nn::T5Model shrunk(c);
  attach("said", method_defaults("said"), *shrunk, 0);
  EXPECT_EQ(trainable_names(*shrunk), (std::set<std::string>{"said.theta_d", "said.lambda"}));
  EXPECT_EQ(shrunk->named_parameters()["said.lambda"].numel(), 258);
  EXPECT_EQ(shrunk->named_parameters()["said.theta_d"].numel(), 19742);
  EXPECT_EQ(count_trainable(*shrunk), 20000);

  auto model = tiny_model();
  Batch batch;
  torch::Tensor base = logits(*model, batch);
  torch::Tensor head = model->shared->weight.detach().clone();
  PeftOptions o = method_defaults("said");
  o.intrinsic_dim = 300;
  attach("said", o, *model, 4);
  EXPECT_TRUE(torch::equal(logits(*model, batch), base));  // theta_d = 0: the base model
  {
    torch::NoGradGuard no_grad;
    model->named_parameters()["said.theta_d"].normal_(0.0, 1.0);
  }
  EXPECT_FALSE(torch::allclose(logits(*model, batch), base));
  EXPECT_TRUE(torch::equal(model->lm_head->matrix(), head));  // tied output layer stays (quirk)
  EXPECT_FALSE(torch::equal(model->shared->weight, head));    // the embedding moved
  EXPECT_THROW(
      {
        auto m2 = tiny_model();
        PeftOptions bad = method_defaults("said");
        bad.intrinsic_dim = 10;
        attach("said", bad, *m2, 0);
      },
      Error);
}

// Central differences through a tiny T5 in double precision for each method's trainable tensors
// (SAID with the exact gradient; its reference 1/L_j scaling is checked against it below).
TEST(PeftOtherMethods, GradientsMatchFiniteDifferences) {
  Batch batch;
  for (const std::string method : {"full", "bitfit", "prompt-r", "said"}) {
    SCOPED_TRACE(method);
    auto model = tiny_model(method == "bitfit");
    model->to(torch::kDouble);
    PeftOptions o = method_defaults(method);
    o.prompt_length = 3;
    o.intrinsic_dim = 200;
    o.said_exact_gradient = true;
    o.said_project_lm_head = true;
    attach(method, o, *model, 5);
    const auto params = trainable_named_parameters(*model);
    {
      torch::NoGradGuard no_grad;
      for (const auto& p : model->named_parameters())
        if (p.value().requires_grad() && method != "full") p.value().normal_(0.0, 0.3);
    }
    auto loss_fn = [&] { return model->forward(batch.ids, batch.mask, {}, batch.labels).loss; };
    testing::GradientCheckOptions fd;
    // Step 1e-5: small enough that crossing a ReLU kink is rare (none in 40 random draws,
    // worst error 6e-8 of the scale), large against float64 rounding of the loss.
    fd.eps = 1e-5;
    fd.atol = 1e-5;  // relative to the largest gradient entry
    fd.relative_to_largest_gradient = true;
    fd.samples_per_tensor = 5;
    const auto check = testing::check_gradients(params, loss_fn, fd);
    EXPECT_GE(check.checked, 5);
    EXPECT_TRUE(check.result());
  }
}

// The reference's SAID gradient: lambda's is exact, theta_d's from tensor j is scaled by 1/L_j.
// With a single reparameterised tensor (all others have lambda = 0 and theta_d's other
// contributions vanish), the quirk gradient is exactly the exact one over L.
TEST(PeftOtherMethods, SaidReferenceGradientScaling) {
  Batch batch;
  torch::Tensor grads[2], lambda_grads[2];
  for (int exact = 0; exact < 2; ++exact) {
    auto model = tiny_model(false, 2);
    model->to(torch::kDouble);
    PeftOptions o = method_defaults("said");
    o.intrinsic_dim = 100;
    o.said_exact_gradient = exact == 1;
    attach("said", o, *model, 9);
    auto params = model->named_parameters();
    torch::Tensor theta = params["said.theta_d"], lambda = params["said.lambda"];
    {
      torch::NoGradGuard no_grad;
      torch::manual_seed(3);  // the same theta_d in both runs
      theta.normal_(0.0, 0.5);
      lambda.zero_();
      lambda[1].fill_(1.0);  // only the first tensor (the 40 x 8 embedding, L = 512) moves
    }
    model->forward(batch.ids, batch.mask, {}, batch.labels).loss.backward();
    grads[exact] = theta.grad().clone();
    lambda_grads[exact] = lambda.grad().clone();
  }
  EXPECT_TENSOR_NEAR(lambda_grads[0], lambda_grads[1], 1e-12, 1e-12);
  EXPECT_GT(grads[1].abs().max().item<double>(), 0.0);
  EXPECT_TENSOR_NEAR(grads[0] * 512, grads[1], 1e-12, 1e-9);  // atol 1e-12, rtol 1e-9
}

}  // namespace
}  // namespace compacter::peft

// The method registry (peft/methods.h) and T5's hook points for methods (nn/hooks.h): every
// record is complete and consistent (settings are options, categories cover every added tensor,
// the prefix / backbone / merge flags are the spec's), and the linear hook, the scale points and
// the path visitors do what nn/hooks.h says, checked against plain T5 computations.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <string>

#include "compacter/core/error.h"
#include "compacter/io/hf_names.h"
#include "compacter/nn/t5.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "support/tensor_near.h"
#include "support/tiny_t5.h"

namespace compacter::peft::registry_test {
namespace {

// Options that fit the tiny T5 (d_model 8, 2 + 2 blocks).
PeftOptions tiny_fit(const std::string& method) {
  PeftOptions o = method_defaults(method);
  o.reduction_factor = 2;
  o.n = 2;
  o.prompt_length = 3;
  o.intrinsic_dim = 120;
  o.adapterdrop_layers = "0";
  return o;
}

TEST(PeftRegistry, EveryRecordIsComplete) {
  const nlohmann::json options = options_to_json(PeftOptions{});
  std::set<std::string> names;
  for (const MethodInfo& m : all_methods()) {
    SCOPED_TRACE(m.name);
    EXPECT_TRUE(names.insert(m.name).second);
    EXPECT_FALSE(std::string(m.summary).empty());
    EXPECT_TRUE(static_cast<bool>(m.attach));
    std::set<std::string> seen;
    for (const std::string& s : m.settings) {
      EXPECT_TRUE(options.contains(s)) << s;
      EXPECT_TRUE(seen.insert(s).second) << s;
    }
    // Every option a method's defaults change is one it uses.
    const nlohmann::json mine = options_to_json(method_defaults(m.name));
    for (const auto& item : mine.items()) {
      if (options[item.key()] != item.value()) {
        EXPECT_TRUE(seen.count(item.key())) << item.key();
      }
    }
    EXPECT_EQ(method_settings(m.name, method_defaults(m.name)).size(), m.settings.size());
  }
  EXPECT_EQ(&find_method("lora"), &all_methods()[12]);
  EXPECT_THROW(find_method("dora"), Error);
}

TEST(PeftRegistry, FlagsAreTheSpecs) {
  std::set<std::string> prefix, rewrites, mergeable;
  for (const MethodInfo& m : all_methods()) {
    if (m.task_prefix) prefix.insert(m.name);
    if (m.rewrites_backbone) rewrites.insert(m.name);
    if (m.merge) mergeable.insert(m.name);
  }
  // Spec §4.2: the prefix only for methods without adapters (and PEFT's two, which keep T5's
  // convention); full fine-tuning and SAID change every backbone weight.
  EXPECT_EQ(prefix, (std::set<std::string>{"full", "bitfit", "prompt-r", "prompt-t", "said", "lora",
                                           "ia3"}));
  EXPECT_EQ(rewrites, (std::set<std::string>{"full", "said"}));
  EXPECT_EQ(mergeable, (std::set<std::string>{"full", "lora", "ia3"}));
  PeftOptions o;
  o.prompt_length = 7;
  for (const MethodInfo& m : all_methods())
    EXPECT_EQ(m.encoder_positions(o), std::string(m.name).rfind("prompt-", 0) == 0 ? 7 : 0)
        << m.name;
}

// Every tensor a method adds has a category of that method, T5's tensors none; the breakdown
// that infers the method agrees with the one told it.
TEST(PeftRegistry, CategoriesCoverEveryAddedTensor) {
  for (bool v1_1 : {false, true}) {
    testing::TinyT5 shape;
    shape.v1_1 = v1_1;
    std::set<std::string> t5;
    for (const HfTensorSpec& s : hf_t5_tensors(testing::tiny_t5_config(shape))) t5.insert(s.name);
    for (const MethodInfo& m : all_methods()) {
      SCOPED_TRACE(std::string(m.name) + (v1_1 ? " v1.1" : " v1.0"));
      auto model = testing::tiny_t5(shape, 1);
      PeftOptions o = tiny_fit(m.name);
      o.train_lm_head = true;  // lm_head counted as backbone_trained
      attach(m.name, o, *model, 2);
      for (const auto& item : model->named_parameters())
        EXPECT_NE(t5.count(item.key()), m.category(item.key()) != TensorCategory::kNone)
            << item.key();
      const ParameterBreakdown told = parameter_breakdown(*model, m.name);
      const ParameterBreakdown inferred = parameter_breakdown(*model);
      EXPECT_EQ(told.trainable, count_trainable(*model));
      for (auto field :
           {&ParameterBreakdown::backbone, &ParameterBreakdown::trainable,
            &ParameterBreakdown::added, &ParameterBreakdown::adapters,
            &ParameterBreakdown::shared_rule, &ParameterBreakdown::layer_norms,
            &ParameterBreakdown::block_layer_norms, &ParameterBreakdown::adapter_biases,
            &ParameterBreakdown::biases, &ParameterBreakdown::prompt,
            &ParameterBreakdown::intrinsic, &ParameterBreakdown::backbone_trained})
        EXPECT_EQ(told.*field, inferred.*field);
    }
  }
  // A tensor no method claims is an error, not a silent backbone tensor.
  auto model = testing::tiny_t5({}, 1);
  model->register_parameter("stray", torch::zeros({2}));
  EXPECT_THROW(parameter_breakdown(*model), Error);
  EXPECT_THROW(parameter_breakdown(*model, "lora"), Error);
}

TEST(PeftRegistry, MergeIsRefusedNamingTheMethod) {
  for (const char* method : {"compacter", "bitfit", "prompt-t", "said"}) {
    auto model = testing::tiny_t5({}, 1);
    attach(method, tiny_fit(method), *model, 0);
    try {
      merge_into_base(*model, method);
      ADD_FAILURE() << method;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("method ") + method + " cannot be merged"),
                std::string::npos)
          << e.what();
    }
  }
  // full: the merged model is the model.
  auto model = testing::tiny_t5({}, 1);
  attach("full", method_defaults("full"), *model, 0);
  model->eval();
  nn::T5Model merged = merge_into_base(*model, "full");
  torch::Tensor ids = torch::tensor({{3, 7, 1}}, torch::kLong),
                labels = torch::tensor({{5, 1}}, torch::kLong);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(model->forward(ids, {}, {}, labels).logits,
                           merged->forward(ids, {}, {}, labels).logits));
}

// ---- nn hook points --------------------------------------------------------------------------

TEST(NnHooks, VisitorsGiveHuggingFacePathsInLinearsOrder) {
  for (bool v1_1 : {false, true}) {
    testing::TinyT5 shape;
    shape.v1_1 = v1_1;
    auto model = testing::tiny_t5(shape, 1);
    std::set<std::string> t5;
    for (const HfTensorSpec& s : hf_t5_tensors(model->config())) t5.insert(s.name);
    const auto modules = model->named_modules();
    std::vector<nn::LinearImpl*> visited;
    model->for_each_linear([&](const std::string& path, nn::LinearImpl& linear) {
      EXPECT_TRUE(t5.count(path + ".weight")) << path;
      EXPECT_EQ(modules[path].get(), &linear) << path;
      visited.push_back(&linear);
    });
    EXPECT_EQ(visited, model->linears());
    EXPECT_EQ(visited.size(), v1_1 ? 6u * 4 + 4u * 3 : 6u * 4 + 4u * 2);
    int attentions = 0, feed_forwards = 0;
    model->for_each_attention([&](const std::string& path, nn::T5AttentionImpl& a) {
      EXPECT_EQ(modules[path].get(), &a) << path;
      ++attentions;
    });
    model->for_each_feed_forward([&](const std::string& path, nn::T5DenseImpl& ff) {
      EXPECT_EQ(modules[path].get(), &ff) << path;
      ++feed_forwards;
    });
    EXPECT_EQ(attentions, 6);
    EXPECT_EQ(feed_forwards, 4);
  }
}

// A hook that adds x C^T: the layer computes x (W + C)^T.
class AddMatrix : public nn::LinearHook {
 public:
  explicit AddMatrix(torch::Tensor c) : c_(std::move(c)) {}
  torch::Tensor forward(const torch::Tensor& x) override { return torch::linear(x, c_); }

 private:
  torch::Tensor c_;
};

TEST(NnHooks, LinearHookAddsToTheOutput) {
  nn::Linear linear(3, 2);
  torch::NoGradGuard no_grad;
  linear->weight.copy_(torch::tensor({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}}));
  const torch::Tensor x = torch::tensor({{1.0, 0.0, -1.0}, {2.0, 1.0, 0.5}});
  const torch::Tensor plain = linear->forward(x);
  linear->set_hook("extra", std::make_shared<AddMatrix>(torch::ones({2, 3})));
  // x (W + 1)^T: each output gains the sum of the inputs.
  const torch::Tensor want = plain + x.sum(1, true);
  EXPECT_TENSOR_NEAR(linear->forward(x), want, 1e-8, 1e-5);  // allclose's defaults
  EXPECT_THROW(linear->set_hook("again", std::make_shared<AddMatrix>(torch::ones({2, 3}))), Error);
}

// Scale points: key / value scales equal scaling the rows of W_k / W_v, the hidden scale the
// columns of W_o, in a model without any.
TEST(NnHooks, ScalePointsEqualScaledWeights) {
  auto scaled = testing::tiny_t5({}, 3), reference = testing::tiny_t5({}, 3);
  scaled->eval();
  reference->eval();
  torch::manual_seed(2);
  const torch::Tensor sk = torch::rand({8}) + 0.5, sv = torch::rand({2, 4}) + 0.5,
                      sh = torch::rand({16}) + 0.5;
  scaled->for_each_attention([&](const std::string&, nn::T5AttentionImpl& a) {
    a.key_scale = sk;
    a.value_scale = sv;
  });
  scaled->for_each_feed_forward(
      [&](const std::string&, nn::T5DenseImpl& ff) { ff.hidden_scale = sh; });
  torch::NoGradGuard no_grad;
  reference->for_each_attention([&](const std::string&, nn::T5AttentionImpl& a) {
    a.k->weight.mul_(sk.view({8, 1}));
    a.v->weight.mul_(sv.reshape({8, 1}));
  });
  reference->for_each_feed_forward([&](const std::string&, nn::T5DenseImpl& ff) {
    ff.wo->weight.mul_(sh.view({1, 16}));
  });
  torch::Tensor ids = torch::tensor({{3, 7, 9, 1}}, torch::kLong),
                labels = torch::tensor({{5, 1}}, torch::kLong);
  EXPECT_TENSOR_NEAR(scaled->forward(ids, {}, {}, labels).logits,
                     reference->forward(ids, {}, {}, labels).logits, 1e-6, 1e-5);  // atol, rtol
}

}  // namespace
}  // namespace compacter::peft::registry_test

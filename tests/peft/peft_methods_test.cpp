// Adapter-family methods on T5 (spec §1.3 trainable sets, §2 placements, §11 items 3-5):
// placements, freezing, the shared A, identity with a zero up-projection, and finite-difference
// gradients through a tiny double-precision T5.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <set>
#include <string>

#include "compacter/core/error.h"
#include "compacter/nn/t5.h"
#include "compacter/peft/methods.h"
#include "support/finite_difference.h"
#include "support/tensor_near.h"
#include "support/tiny_t5.h"

namespace compacter::peft {
namespace {

const std::vector<std::string> kMethods{"adapter", "pfeiffer",  "adapterdrop", "lowrank",
                                        "phm",     "compacter", "compacter++"};

T5Config tiny_config(int64_t layers, int64_t d_model) {
  testing::TinyT5 shape;
  shape.d_model = d_model;
  shape.d_ff = 2 * d_model;
  shape.layers = layers;
  return testing::tiny_t5_config(shape);
}

nn::T5Model methods_tiny_model(int64_t layers, int64_t d_model, uint64_t seed = 1) {
  nn::T5Model model(tiny_config(layers, d_model));
  model->init_weights(seed);
  return model;
}

// Options that fit a tiny d_model: d = d_model / 4, PHM n = 2.
PeftOptions tiny_options(const std::string& method) {
  PeftOptions o = method_defaults(method);
  o.reduction_factor = 4;
  o.n = 2;
  return o;
}

bool is_adapter_param(const std::string& name) {
  return name.find(".adapter.") != std::string::npos;
}

bool is_t5_layer_norm(const std::string& name) {
  return name.size() > 17 && name.compare(name.size() - 17, 17, "layer_norm.weight") == 0 &&
         !is_adapter_param(name);
}

TEST(PeftMethods, UnknownMethodListsKnownNames) {
  try {
    find_method("houlsby");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& m : kMethods) EXPECT_NE(msg.find(m), std::string::npos) << msg;
  }
  // The twelve methods of the paper and PEFT's two, by their command-line names.
  std::set<std::string> names;
  for (const auto& m : all_methods()) names.insert(m.name);
  EXPECT_EQ(names, (std::set<std::string>{"full", "adapter", "pfeiffer", "adapterdrop", "lowrank",
                                          "phm", "compacter", "compacter++", "bitfit", "prompt-r",
                                          "prompt-t", "said", "lora", "ia3"}));
  EXPECT_EQ(parse_block_list("0-2, 5"), (std::vector<int64_t>{0, 1, 2, 5}));
  EXPECT_TRUE(parse_block_list("").empty());
  EXPECT_THROW(parse_block_list("a-3"), Error);
  // Found by fuzz_adapter_config: 20 digits made std::stoll throw out_of_range (not an Error), and
  // a range to 10^11 filled memory; blocks above 65535 are refused by name.
  EXPECT_THROW(parse_block_list("99999999999999999999"), Error);
  EXPECT_THROW(parse_block_list("0-99999999999"), Error);
  EXPECT_THROW(parse_block_list("65536"), Error);
  EXPECT_EQ(parse_block_list("00065535").back(), 65535);
}

TEST(PeftMethods, RejectsBadOptions) {
  auto model = methods_tiny_model(1, 12);
  PeftOptions o = tiny_options("compacter");               // d = 3
  EXPECT_THROW(attach("compacter", o, *model, 0), Error);  // 3 % 2 != 0
  o = tiny_options("phm");
  o.n = 5;
  EXPECT_THROW(attach("phm", o, *model, 0), Error);
  o = tiny_options("adapter");
  o.reduction_factor = 100;
  EXPECT_THROW(attach("adapter", o, *model, 0), Error);
  o = tiny_options("adapter");
  o.non_linearity = "tanhh";
  EXPECT_THROW(attach("adapter", o, *model, 0), Error);
  o = tiny_options("adapterdrop");
  o.adapterdrop_layers = "0-4";  // a 1-block model has no block 4
  EXPECT_THROW(attach("adapterdrop", o, *model, 0), Error);
}

// Spec §2 table: 48 / 24 / 28 / 24 hooks on 12 + 12 blocks, never after cross-attention.
TEST(PeftMethods, Placement) {
  const std::map<std::string, int64_t> expected{
      {"adapter", 48}, {"pfeiffer", 24},  {"adapterdrop", 28}, {"lowrank", 48},
      {"phm", 48},     {"compacter", 48}, {"compacter++", 24}};
  for (const auto& method : kMethods) {
    SCOPED_TRACE(method);
    nn::T5Model model(tiny_config(12, 16));
    Attachment a = attach(method, tiny_options(method), *model, 0);
    EXPECT_EQ(a.adapters, expected.at(method));
    EXPECT_EQ(a.bottleneck, 4);
    int64_t hooks = 0;
    model->for_each_sublayer(
        [&](const std::string&, int64_t block, nn::HookSite site, nn::SublayerImpl& s) {
          const bool has = static_cast<bool>(s.output_hook());
          hooks += has;
          bool want = site != nn::HookSite::kCrossAttention;
          if (method == "pfeiffer") want = want && site == nn::HookSite::kSelfAttention;
          if (method == "compacter++") want = want && site == nn::HookSite::kFeedForward;
          if (method == "adapterdrop") want = want && block >= 5;
          EXPECT_EQ(has, want) << "block " << block << " " << nn::hook_site_name(site);
        });
    EXPECT_EQ(hooks, expected.at(method));
  }
}

// Spec §1.3: adapters (+ the shared A once) + all T5 layer-norm scales; embedding frozen.
TEST(PeftMethods, TrainableSet) {
  for (const auto& method : kMethods) {
    SCOPED_TRACE(method);
    nn::T5Model model(tiny_config(12, 16));
    Attachment a = attach(method, tiny_options(method), *model, 0);
    std::set<std::string> trainable;
    int64_t layer_norms = 0, rules = 0;
    for (const auto& p : model->named_parameters()) {
      const std::string& name = p.key();
      const bool want = is_adapter_param(name) || is_t5_layer_norm(name) || name == "phm_rule";
      EXPECT_EQ(p.value().requires_grad(), want) << name;
      if (p.value().requires_grad()) trainable.insert(name);
      layer_norms += is_t5_layer_norm(name) && p.value().requires_grad();
      rules += name.find("phm_rule") != std::string::npos;
    }
    EXPECT_EQ(layer_norms, 62);  // 12*2 + 12*3 + 2 (spec §1.3)
    EXPECT_EQ(trainable_parameters(*model).size(), trainable.size());
    const bool shared = method == "compacter" || method == "compacter++";
    EXPECT_EQ(a.shared_rule.defined(), shared);
    EXPECT_EQ(trainable.count("phm_rule"), shared ? 1u : 0u);
    EXPECT_EQ(rules, shared ? 1 : method == "phm" ? 2 * a.adapters : 0);
    EXPECT_FALSE(model->shared->weight.requires_grad());
  }
  // Switches: frozen norms, trained lm_head (= the tied embedding), fixed A.
  nn::T5Model model(tiny_config(2, 16));
  PeftOptions o = tiny_options("compacter");
  o.train_layer_norms = false;
  o.train_lm_head = true;
  o.learn_phm = false;
  attach("compacter", o, *model, 0);
  for (const auto& p : model->named_parameters())
    EXPECT_EQ(p.value().requires_grad(), is_adapter_param(p.key()) || p.key() == "shared.weight")
        << p.key();
}

// A forward + backward pass leaves every frozen tensor without a gradient; the shared A gets one,
// and every PHM layer uses that very tensor.
TEST(PeftMethods, FrozenParametersGetNoGradient) {
  torch::Tensor ids = torch::tensor({{3, 7, 9, 1}, {4, 5, 1, 0}}, torch::kLong);
  torch::Tensor mask = (ids != 0).to(torch::kLong);
  torch::Tensor labels = torch::tensor({{6, 2, 1}, {8, 1, -100}}, torch::kLong);
  for (const auto& method : kMethods) {
    SCOPED_TRACE(method);
    auto model = methods_tiny_model(6, 16);
    Attachment a = attach(method, tiny_options(method), *model, 3);
    model->forward(ids, mask, {}, labels).loss.backward();
    for (const auto& p : model->named_parameters()) {
      if (p.value().requires_grad()) {
        EXPECT_TRUE(p.value().grad().defined()) << p.key();
      } else {
        EXPECT_FALSE(p.value().grad().defined()) << p.key();
      }
    }
    if (a.shared_rule.defined()) {
      EXPECT_GT(a.shared_rule.grad().abs().sum().item<double>(), 0.0);
      int64_t users = 0;
      for (const auto& m : model->modules(false)) {
        if (auto* phm = dynamic_cast<PhmLinearImpl*>(m.get())) {
          EXPECT_EQ(phm->rule().unsafeGetTensorImpl(), a.shared_rule.unsafeGetTensorImpl());
          ++users;
        }
      }
      EXPECT_EQ(users, 2 * a.adapters);
    }
  }
}

// With a zero up-projection every adapter is the identity, so T5's outputs do not move.
TEST(PeftMethods, ZeroUpProjectionLeavesOutputsUnchanged) {
  torch::Tensor ids = torch::tensor({{3, 7, 9, 1}}, torch::kLong);
  torch::Tensor mask = torch::ones_like(ids);
  torch::Tensor dec = torch::tensor({{0, 6, 2}}, torch::kLong);
  for (const auto& method : kMethods) {
    SCOPED_TRACE(method);
    auto model = methods_tiny_model(6, 16, 9);
    model->eval();
    torch::NoGradGuard no_grad;
    torch::Tensor before = model->forward(ids, mask, dec, {}).logits;
    attach(method, tiny_options(method), *model, 5);
    torch::Tensor changed = model->forward(ids, mask, dec, {}).logits;
    EXPECT_GT((changed - before).abs().max().item<double>(), 0.0);
    for (const auto& p : model->named_parameters())
      if (p.key().find(".adapter.up_sampler.") != std::string::npos) p.value().zero_();
    torch::Tensor after = model->forward(ids, mask, dec, {}).logits;
    EXPECT_TENSOR_NEAR(after, before, 0);
  }
}

// Spec §11 item 3: Compacter starts almost as the identity; dense adapters move y by O(1e-2).
TEST(PeftMethods, NearIdentityAtInit) {
  torch::manual_seed(2);
  auto gen = at::detail::createCPUGenerator(4);
  torch::Tensor y = torch::randn({8, 768});
  AdapterOptions o;
  o.kind = ProjectionKind::kPhm;
  torch::Tensor rule = make_shared_rule(4, RuleInit::kNormal, 1e-4, gen);
  Adapter compacter(o, gen, rule);
  torch::NoGradGuard no_grad;
  const double rel = (compacter->forward(y) - y).norm().item<double>() / y.norm().item<double>();
  EXPECT_LT(rel, 1e-3);
  o.kind = ProjectionKind::kDense;
  Adapter dense(o, gen);
  const double moved = (dense->forward(y) - y).abs().max().item<double>();
  EXPECT_GT(moved, 1e-5);
  EXPECT_LT(moved, 0.1);
}

// Central differences through a 1-block T5 (d_model 8) in double precision (softmax and RMS-norm
// variance stay float64 for float64 models), relative to the largest gradient entry.
TEST(PeftMethods, GradientsMatchFiniteDifferences) {
  torch::Tensor ids = torch::tensor({{3, 7, 9, 1}, {4, 5, 1, 0}}, torch::kLong);
  torch::Tensor mask = (ids != 0).to(torch::kLong);
  torch::Tensor labels = torch::tensor({{6, 2, 1}, {8, 1, -100}}, torch::kLong);
  for (const std::string method : {"adapter", "lowrank", "phm", "compacter"}) {
    SCOPED_TRACE(method);
    torch::manual_seed(8);
    auto model = methods_tiny_model(1, 8, 2);
    model->to(torch::kDouble);
    model->eval();
    PeftOptions o = method_defaults(method);
    o.reduction_factor = 2;
    o.n = 2;
    o.phm_c_init = "uniform";  // O(1) shared A so that its gradient is not tiny
    o.layer_norm_before = method == "adapter";
    o.layer_norm_after = method == "adapter";
    o.rank = method == "lowrank" ? 2 : 1;
    attach(method, o, *model, 6);
    std::vector<std::pair<std::string, torch::Tensor>> params;
    {
      torch::NoGradGuard no_grad;
      for (const auto& p : model->named_parameters()) {
        if (!p.value().requires_grad()) continue;
        if (is_adapter_param(p.key())) p.value().normal_(0.0, 0.5);  // O(1) gradients
        params.emplace_back(p.key(), p.value());
      }
    }
    auto loss_fn = [&] { return model->forward(ids, mask, {}, labels).loss; };
    testing::GradientCheckOptions fd;
    fd.eps = 1e-5;
    fd.atol = 1e-6;  // relative to the largest gradient entry
    fd.relative_to_largest_gradient = true;
    fd.samples_per_tensor = 6;
    const auto check = testing::check_gradients(params, loss_fn, fd);
    EXPECT_GT(check.checked, 20);
    EXPECT_TRUE(check.result());
  }
}

// The adapter controller alone, in double precision: every parameter of every projection kind,
// with both optional layer norms, a per-layer and a shared A.
TEST(PeftMethods, AdapterGradientsMatchFiniteDifferences) {
  torch::manual_seed(12);
  auto gen = at::detail::createCPUGenerator(12);
  torch::Tensor y = torch::randn({3, 8}, torch::kDouble);
  for (int variant = 0; variant < 4; ++variant) {
    SCOPED_TRACE(variant);
    AdapterOptions o;
    o.d_model = 8;
    o.bottleneck = 4;
    o.rank = 2;
    o.phm.n = 2;
    o.layer_norm_before = variant == 0;
    o.layer_norm_after = variant == 0;
    o.kind = variant == 0   ? ProjectionKind::kDense
             : variant == 1 ? ProjectionKind::kLowRank
                            : ProjectionKind::kPhm;
    o.phm.factorized = variant == 3;
    torch::Tensor rule;
    if (variant == 3) rule = torch::randn({2, 2, 2}, torch::kDouble).requires_grad_(true);
    Adapter adapter(o, gen, rule);
    adapter->to(torch::kDouble);
    std::vector<std::pair<std::string, torch::Tensor>> params;
    for (const auto& p : adapter->named_parameters()) params.emplace_back(p.key(), p.value());
    if (rule.defined()) params.emplace_back("shared rule", rule);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : params) p.second.normal_(0.0, 0.7);
    }
    auto loss_fn = [&] { return adapter->forward(y).pow(2).sum(); };
    testing::GradientCheckOptions fd;  // every entry: |autograd - fd| <= 1e-6 (1 + |fd|)
    fd.eps = 1e-6;
    fd.atol = 1e-6;
    fd.rtol = 1e-6;
    EXPECT_TRUE(testing::check_gradients(params, loss_fn, fd).result());
  }
}

}  // namespace
}  // namespace compacter::peft

// Adapter directories (issue #3): save -> load reproduces the model's outputs bit for bit for
// every method; a mismatched base, unknown method, newer format and broken files are refused.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "compacter/core/error.h"
#include "compacter/nn/t5.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "support/tensor_near.h"
#include "support/test_support.h"
#include "support/tiny_t5.h"

namespace compacter::peft {
namespace {

nn::T5Model base_model(int64_t d_ff = 16) {
  testing::TinyT5 shape;
  shape.d_ff = d_ff;
  nn::T5Model model = testing::tiny_t5(shape, 3);
  model->eval();
  return model;
}

PeftOptions adapter_tiny_options(const std::string& method) {
  PeftOptions o = method_defaults(method);
  o.reduction_factor = 2;
  o.n = 2;
  o.prompt_length = 3;
  o.intrinsic_dim = 120;
  o.adapterdrop_layers = "0";  // the model has 2 blocks
  return o;
}

torch::Tensor adapter_logits(nn::T5ModelImpl& model) {
  torch::NoGradGuard no_grad;
  torch::Tensor ids = torch::tensor({{3, 7, 9, 1}, {4, 5, 1, 0}}, torch::kLong);
  torch::Tensor labels = torch::tensor({{6, 2, 1}, {8, 1, -100}}, torch::kLong);
  return model.forward(ids, (ids != 0).to(torch::kLong), {}, labels).logits;
}

// A trained-looking adapter: every trainable tensor moved away from its init.
AdapterSpec trained(nn::T5ModelImpl& model, const std::string& method, uint64_t seed) {
  AdapterSpec spec{method, adapter_tiny_options(method), seed};
  attach(method, spec.options, model, seed);
  torch::NoGradGuard no_grad;
  for (auto& p : trainable_parameters(model)) p.add_(torch::randn_like(p) * 0.1);
  return spec;
}

TEST(AdapterFile, SaveLoadReproducesEveryMethodExactly) {
  testing::TempDir dir;
  torch::manual_seed(0);
  for (const auto& info : all_methods()) {
    const std::string method = info.name;
    SCOPED_TRACE(method);
    auto model = base_model();
    const AdapterSpec spec = trained(*model, method, 11);
    const std::string out = dir.path() + "/" + method;
    save_adapter(*model, spec, out);
    auto fresh = base_model();
    torch::Tensor before = adapter_logits(*fresh);
    load_adapter(*fresh, out);
    EXPECT_TENSOR_NEAR(adapter_logits(*fresh), adapter_logits(*model), 0);
    if (method != "full") {
      EXPECT_FALSE(torch::allclose(adapter_logits(*fresh), before));
    }
    EXPECT_EQ(count_trainable(*fresh), count_trainable(*model));
    EXPECT_EQ(read_adapter_spec(out).method, method);
  }
}

// Serving (compacter serve): every method's adapter loaded on a model that shares one base's
// tensors (nn::share_weights) gives the outputs of the same adapter on a model of its own, all
// adapters at once, and the base's tensors stay bit for bit what they were; the frozen ones are
// the base's storage, not copies.
TEST(AdapterFile, AdaptersOnOneSharedBaseMatchSeparateModelsAndLeaveTheBaseIntact) {
  testing::TempDir dir;
  torch::manual_seed(0);
  auto base = base_model();
  std::vector<std::pair<std::string, torch::Tensor>> snapshot;
  for (const auto& item : base->named_parameters(true))
    snapshot.emplace_back(item.key(), item.value().detach().clone());
  const torch::Tensor base_logits = adapter_logits(*base);
  std::vector<std::pair<nn::T5Model, torch::Tensor>> served;  // model on the shared base, expected
  for (const auto& info : all_methods()) {
    const std::string method = info.name;
    SCOPED_TRACE(method);
    auto own = base_model();
    const AdapterSpec spec = trained(*own, method, 5);
    save_adapter(*own, spec, dir.path() + "/" + method);
    auto shared = nn::share_weights(*base);
    load_adapter(*shared, dir.path() + "/" + method);
    if (method != "full" && method != "said") {  // said computes its weights from theta0
      EXPECT_EQ(shared->linears()[3]->weight.data_ptr(), base->linears()[3]->weight.data_ptr());
    }
    served.emplace_back(shared, adapter_logits(*own));
  }
  for (size_t i = 0; i < served.size(); ++i) {
    SCOPED_TRACE(all_methods()[i].name);
    EXPECT_TENSOR_NEAR(adapter_logits(*served[i].first), served[i].second, 0);
    EXPECT_FALSE(torch::allclose(served[i].second, base_logits));
  }
  for (const auto& [name, before] : snapshot)
    EXPECT_TRUE(torch::equal(base->named_parameters(true)[name], before)) << name;
  EXPECT_TENSOR_NEAR(adapter_logits(*base), base_logits, 0);
}

TEST(AdapterFile, ShareWeightsRefusesAModelWithAMethodAttached) {
  auto base = base_model();
  attach("compacter++", adapter_tiny_options("compacter++"), *base, 1);
  EXPECT_THROW(nn::share_weights(*base), Error);
}

TEST(AdapterFile, CompacterPlusPlusOnT5BaseIsAbout420KB) {
  // The trainable set depends on d_model and depth only, so the frozen parts are shrunk.
  T5Config c = builtin_t5_config("t5-base");
  c.vocab_size = 2;
  c.d_kv = 1;
  c.num_heads = 1;
  c.d_ff = 1;
  nn::T5Model model(c);
  attach("compacter++", method_defaults("compacter++"), *model, 0);
  testing::TempDir dir;
  save_adapter(*model, {"compacter++", method_defaults("compacter++"), 0}, dir.path() + "/a");
  const auto bytes = std::filesystem::file_size(dir.path() + "/a/adapter_model.safetensors");
  EXPECT_EQ(count_trainable(*model), 104704);  // spec §7.2
  EXPECT_GE(bytes, 104704u * 4);
  EXPECT_LT(bytes, 460000u);  // + the JSON header naming 206 tensors
}

class AdapterFileErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = base_model();
    save_adapter(*model, trained(*model, "compacter", 5), dir_);
  }
  nlohmann::json config() {
    std::ifstream in(dir_ + "/adapter_config.json");
    return nlohmann::json::parse(in);
  }
  void write_config(const nlohmann::json& j) {
    testing::write_file(dir_ + "/adapter_config.json", j.dump());
  }
  void expect_refused(const std::string& fragment, nn::T5Model model = base_model()) {
    try {
      load_adapter(*model, dir_);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  }
  testing::TempDir tmp_;
  std::string dir_ = tmp_.path() + "/adapter";
};

TEST_F(AdapterFileErrors, MismatchedBase) {
  expect_refused("d_ff = 16, but this model has 32", base_model(32));
}

TEST_F(AdapterFileErrors, UnknownMethod) {
  auto j = config();
  j["method"] = "dora";
  write_config(j);
  expect_refused("unknown method \"dora\"");
}

TEST_F(AdapterFileErrors, NewerFormat) {
  auto j = config();
  j["format_version"] = 2;
  write_config(j);
  expect_refused("newer than this compacter understands");
}

TEST_F(AdapterFileErrors, UnknownOrMistypedOption) {
  auto j = config();
  j["options"]["phm_dim"] = 3;
  write_config(j);
  expect_refused("unknown method option \"phm_dim\"");
  j = config();
  j["options"].erase("phm_dim");
  j["options"]["n"] = "four";
  write_config(j);
  expect_refused("option \"n\" has the wrong type");
}

TEST_F(AdapterFileErrors, BadJsonAndMissingFiles) {
  testing::write_file(dir_ + "/adapter_config.json", "{\"format\": ");
  expect_refused("not valid JSON");
  std::filesystem::remove(dir_ + "/adapter_config.json");
  expect_refused("not an adapter directory");
}

TEST_F(AdapterFileErrors, DamagedWeightsFailTheChecksum) {
  const std::string weights = dir_ + "/adapter_model.safetensors";
  const std::string original = testing::read_file(weights);
  EXPECT_TRUE(config().contains("weights_fnv1a64"));
  {  // one flipped bit in the last tensor's data: still a valid file, other values
    std::string flipped = original;
    flipped[flipped.size() - 3] = static_cast<char>(flipped[flipped.size() - 3] ^ 0x10);
    testing::write_file(weights, flipped);
    expect_refused("do not match the checksum in adapter_config.json");
  }
  testing::write_file(weights, original.substr(0, original.size() - 10));  // a partial copy
  expect_refused("do not match the checksum");
  testing::write_file(weights, original);
  auto model = base_model();
  EXPECT_NO_THROW(load_adapter(*model, dir_));
}

TEST_F(AdapterFileErrors, TensorsMissingExtraMisshapenOrTruncated) {
  const std::string weights = dir_ + "/adapter_model.safetensors";
  const std::string original = testing::read_file(weights);
  {  // without its checksum (an adapter of an older version): the structure is still checked
    auto j = config();
    j.erase("weights_fnv1a64");
    write_config(j);
  }
  // An adapter of another method: its tensors are not this method's.
  {
    auto model = base_model();
    save_adapter(*model, trained(*model, "lowrank", 5), tmp_.path() + "/other");
    std::filesystem::copy_file(tmp_.path() + "/other/adapter_model.safetensors", weights,
                               std::filesystem::copy_options::overwrite_existing);
    expect_refused("missing tensor");
  }
  {  // the saved config says n = 4: the tensors have the shapes of n = 2
    testing::write_file(weights, original);
    auto j = config();
    j["options"]["n"] = 4;
    j["options"]["reduction_factor"] = 2;
    write_config(j);
    expect_refused("has shape");
  }
  testing::write_file(weights, original.substr(0, original.size() - 10));
  auto j = config();
  j["options"]["n"] = 2;
  write_config(j);
  expect_refused("adapter_model.safetensors");
}

}  // namespace
}  // namespace compacter::peft

// Loading and saving Hugging Face T5 folders: round trips, headers read without our reader,
// vocabulary resizing, and clear errors for broken folders.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "compacter/core/error.h"
#include "compacter/io/hf_names.h"
#include "compacter/io/safetensors.h"
#include "compacter/nn/checkpoint.h"
#include "support/raw_safetensors.h"
#include "support/tensor_near.h"
#include "support/test_support.h"
#include "support/tiny_t5.h"

namespace compacter {
namespace {

namespace fs = std::filesystem;

T5Config small_config(bool v11) {
  testing::TinyT5 shape;
  shape.vocab = 60;
  shape.d_model = 16;
  shape.d_ff = 32;
  shape.decoder_layers = 3;
  shape.heads = 4;
  shape.v1_1 = v11;
  return testing::tiny_t5_config(shape);
}

// Expects load_t5(dir) to throw an Error whose message contains every `parts`.
void expect_checkpoint_error(const std::string& dir, const std::vector<std::string>& parts) {
  try {
    nn::load_t5(dir);
    FAIL() << "expected an error loading " << dir;
  } catch (const Error& e) {
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, SaveLoadRoundTripIsExact) {
  for (bool v11 : {false, true}) {
    SCOPED_TRACE(v11 ? "v1.1" : "v1.0");
    testing::TempDir tmp;
    nn::T5Model model(small_config(v11));
    model->init_weights(42);
    nn::save_t5(*model, tmp.path());
    auto loaded = nn::load_t5(tmp.path());
    EXPECT_TRUE(loaded.unexpected.empty());
    auto a = model->named_parameters(), b = loaded.model->named_parameters();
    ASSERT_EQ(a.size(), b.size());
    for (const auto& item : a) EXPECT_TRUE(torch::equal(item.value(), b[item.key()])) << item.key();

    // The written header, read without our reader: HF names, F32, shapes of the name table.
    const std::string bytes = testing::read_file(tmp.file("model.safetensors"));
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
    auto header = nlohmann::json::parse(bytes.substr(8, n));
    auto specs = hf_t5_tensors(model->config());
    EXPECT_EQ(header.size(), specs.size() + 1);  // + __metadata__
    for (const auto& s : specs) {
      ASSERT_TRUE(header.contains(s.name)) << s.name;
      EXPECT_EQ(header[s.name]["dtype"], "F32");
      EXPECT_EQ(header[s.name]["shape"].get<std::vector<int64_t>>(), s.shape);
    }
    auto cfg = nlohmann::json::parse(testing::read_file(tmp.file("config.json")));
    EXPECT_EQ(cfg["model_type"], "t5");
    EXPECT_EQ(cfg["num_decoder_layers"], 3);
    EXPECT_EQ(cfg["tie_word_embeddings"], !v11);
  }
}

TEST(Checkpoint, TinyCheckpointLoadsAndResaves) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  auto loaded = nn::load_t5(testing::shared_path("data/tiny-t5"));
  EXPECT_TRUE(loaded.unexpected.empty());
  testing::TempDir tmp;
  nn::save_t5(*loaded.model, tmp.path());
  auto original =
      testing::raw_load_safetensors(testing::shared_path("data/tiny-t5/model.safetensors"));
  auto resaved = testing::raw_load_safetensors(tmp.file("model.safetensors"));
  EXPECT_EQ(original.size(), resaved.size());
  for (const auto& [name, t] : original) {
    ASSERT_TRUE(resaved.count(name)) << name;
    EXPECT_TRUE(torch::equal(t, resaved[name])) << name;
  }
}

TEST(Checkpoint, TiedAliasesAndUnexpectedTensors) {
  testing::TempDir tmp;
  nn::T5Model model(small_config(false));
  model->init_weights(3);
  auto params = model->named_parameters();
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& s : hf_t5_tensors(model->config()))
    if (s.name != "shared.weight") tensors.emplace_back(s.name, params[s.name].detach());
  // Only the encoder's alias of the shared embedding is stored, plus a stray tensor.
  tensors.emplace_back("encoder.embed_tokens.weight", params["shared.weight"].detach());
  tensors.emplace_back("decoder.embed_tokens.weight", params["shared.weight"].detach());
  tensors.emplace_back("extra.stuff", torch::zeros({2}));
  safetensors::save(tmp.file("model.safetensors"), tensors);
  std::ofstream(tmp.file("config.json")) << t5_config_to_json(model->config()).dump();
  auto loaded = nn::load_t5(tmp.path());
  EXPECT_TRUE(torch::equal(loaded.model->shared->weight, model->shared->weight));
  ASSERT_EQ(loaded.unexpected.size(), 1u);
  EXPECT_EQ(loaded.unexpected[0], "extra.stuff");
}

TEST(Checkpoint, ResizeVocabKeepsLeadingRows) {
  testing::TempDir tmp;
  nn::T5Model model(small_config(false));
  model->init_weights(5);
  nn::save_t5(*model, tmp.path());
  nn::T5LoadOptions o;
  o.vocab_rows = 50;
  auto cut = nn::load_t5(tmp.path(), o).model;
  EXPECT_EQ(cut->config().vocab_size, 50);
  EXPECT_EQ(cut->shared->weight.size(0), 50);
  model->eval();
  cut->eval();
  torch::Tensor ids = torch::randint(3, 50, {2, 5}, torch::kLong);
  torch::Tensor labels = torch::randint(3, 50, {2, 3}, torch::kLong);
  torch::NoGradGuard g;
  auto full = model->forward(ids, {}, {}, labels).logits;
  auto small = cut->forward(ids, {}, {}, labels).logits;
  EXPECT_TENSOR_NEAR(full.narrow(2, 0, 50), small, 1e-6, 1e-6);
}

class BrokenCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = nn::T5Model(small_config(true));
    nn::save_t5(*model_, dir_.path());
  }
  void rewrite(
      const std::function<void(std::vector<std::pair<std::string, torch::Tensor>>&)>& edit) {
    auto params = model_->named_parameters();
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (const auto& s : hf_t5_tensors(model_->config()))
      tensors.emplace_back(s.name, params[s.name].detach());
    edit(tensors);
    safetensors::save(dir_.file("model.safetensors"), tensors);
  }
  void edit_config(const std::function<void(nlohmann::json&)>& edit) {
    auto j = nlohmann::json::parse(testing::read_file(dir_.file("config.json")));
    edit(j);
    testing::write_file(dir_.file("config.json"), j.dump());
  }
  testing::TempDir dir_;
  nn::T5Model model_{nullptr};
};

TEST_F(BrokenCheckpoint, MissingTensorIsNamed) {
  const std::string gone = "encoder.block.0.layer.0.SelfAttention.o.weight";
  rewrite([&](auto& t) {
    t.erase(std::find_if(t.begin(), t.end(), [&](const auto& p) { return p.first == gone; }));
  });
  expect_checkpoint_error(dir_.path(), {"missing", gone});
}

TEST_F(BrokenCheckpoint, WrongShapeSaysExpectedAndGot) {
  rewrite([](auto& t) { t[1].second = torch::zeros({3, 3}); });
  expect_checkpoint_error(dir_.path(),
                          {"encoder.block.0.layer.0.SelfAttention.q.weight", "[16, 16]", "[3, 3]"});
}

TEST_F(BrokenCheckpoint, WrongDtypeIsRefused) {
  rewrite([](auto& t) { t[1].second = torch::zeros({16, 16}, torch::kLong); });
  expect_checkpoint_error(dir_.path(), {"SelfAttention.q.weight", "I64"});
}

TEST_F(BrokenCheckpoint, MissingConfigFieldIsNamed) {
  edit_config([](nlohmann::json& j) { j.erase("d_model"); });
  expect_checkpoint_error(dir_.path(), {"config.json", "d_model"});
}

TEST_F(BrokenCheckpoint, WrongConfigTypeIsNamed) {
  edit_config([](nlohmann::json& j) { j["num_heads"] = "four"; });
  expect_checkpoint_error(dir_.path(), {"num_heads", "integer"});
}

TEST_F(BrokenCheckpoint, BadConfigJson) {
  testing::write_file(dir_.file("config.json"), "{\"d_model\": 16,");
  expect_checkpoint_error(dir_.path(), {"config.json", "JSON"});
}

TEST_F(BrokenCheckpoint, UnknownActivation) {
  edit_config([](nlohmann::json& j) { j["feed_forward_proj"] = "gated-swishy"; });
  expect_checkpoint_error(dir_.path(), {"feed_forward_proj", "gated-swishy"});
}

TEST_F(BrokenCheckpoint, TruncatedWeightsFile) {
  std::string bytes = testing::read_file(dir_.file("model.safetensors"));
  testing::write_file(dir_.file("model.safetensors"), bytes.substr(0, bytes.size() / 2));
  expect_checkpoint_error(dir_.path(), {"model.safetensors"});
}

TEST(Checkpoint, MissingFolder) {
  expect_checkpoint_error("/nonexistent/model", {"/nonexistent/model"});
}

TEST(Checkpoint, ModelCommandReportsBrokenFolder) {
  testing::TempDir tmp;
  auto r = testing::run_compacter("forward --model " + tmp.path() + " --inputs x --out " +
                                  tmp.file("out.safetensors"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("compacter: error:"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace compacter

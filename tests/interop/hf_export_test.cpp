// `export --to hf` (interop/hf_export.h): a full fine-tune of the tiny T5 of ../shared (written by
// Hugging Face transformers) exported as a Hugging Face folder holds exactly the tensors, shapes,
// dtype and metadata of the folder transformers itself wrote, a config.json whose vocab_size is
// the rows it holds, the base's generation config and the tokenizer; loaded back, it gives the
// logits of the adapted model within 1e-5. A LoRA adapter and an untied (v1.1) model likewise;
// refusals (unmergeable method, existing output, broken adapter) leave nothing behind.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "compacter/core/error.h"
#include "compacter/interop/hf_export.h"
#include "compacter/io/safetensors.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "support/tensor_near.h"
#include "support/test_support.h"
#include "support/tiny_t5.h"

namespace compacter::interop::hf_export_test {
namespace {

namespace fs = std::filesystem;

const char* kTiny = "data/tiny-t5";
const char* kSpiece = "data/t5-tokenizer/spiece.model";

torch::Tensor logits_of(nn::T5ModelImpl& model) {
  torch::NoGradGuard no_grad;
  // The fixed batch of ../shared/data/tiny-t5/README.md.
  const torch::Tensor ids =
      torch::tensor({{13, 58, 211, 7, 404, 1}, {99, 3, 501, 1, 0, 0}}, torch::kLong);
  const torch::Tensor labels = torch::tensor({{31, 250, 1}, {77, 1, -100}}, torch::kLong);
  return model.forward(ids, (ids != 0).to(torch::kLong), {}, labels).logits;
}

// Saves `method` on the model in `base_dir` (cut to `rows` rows when > 0), its trainable
// tensors moved by noise; returns the adapted model.
nn::T5Model write_adapter(const std::string& base_dir, const std::string& method,
                          const std::string& out, int64_t rows = -1) {
  nn::T5Model model = nn::load_t5(base_dir).model;
  if (rows > 0) model->resize_vocab(rows);
  model->eval();
  const peft::PeftOptions o = peft::method_defaults(method);
  peft::attach(method, o, *model, 5);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(11);
    for (auto& p : peft::trainable_parameters(*model)) p.add_(torch::randn_like(p) * 0.05);
  }
  peft::save_adapter(*model, {method, o, 5}, out);
  return model;
}

std::map<std::string, std::vector<int64_t>> shapes_of(const std::string& file) {
  std::map<std::string, std::vector<int64_t>> out;
  const safetensors::File f = safetensors::File::open(file);
  for (const auto& t : f.header().tensors) out[t.name] = t.shape;
  return out;
}

nlohmann::json json_of(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

TEST(HfExport, FullFineTuneIsTheFolderTransformersWrites) {
  REQUIRE_SHARED(kTiny);
  REQUIRE_SHARED(kSpiece);
  testing::TempDir dir;
  const std::string base = testing::shared_path(kTiny);
  nn::T5Model adapted = write_adapter(base, "full", dir.file("full"));
  HfExportOptions o;
  o.source = dir.file("full");
  o.model = base;
  o.tokenizer = testing::shared_path(kSpiece);
  o.out = dir.file("hf");
  const InteropReport r = export_hf(o);
  EXPECT_EQ(r.method, "full");

  // Tensors: the names, shapes (F32) and metadata of the folder transformers wrote.
  const auto want = shapes_of(base + "/model.safetensors");
  const auto got = shapes_of(o.out + "/model.safetensors");
  EXPECT_EQ(got, want);
  const safetensors::File file = safetensors::File::open(o.out + "/model.safetensors");
  const std::map<std::string, std::string> pt{{"format", "pt"}};
  EXPECT_EQ(file.header().metadata, pt);
  for (const auto& t : file.header().tensors) EXPECT_EQ(t.dtype, safetensors::DType::F32);

  // config.json: the base's fields, the vocabulary it holds.
  const nlohmann::json base_config = json_of(base + "/config.json");
  const nlohmann::json config = json_of(o.out + "/config.json");
  for (const char* key :
       {"model_type", "architectures", "d_model", "d_kv", "d_ff", "num_layers",
        "num_decoder_layers", "num_heads", "relative_attention_num_buckets",
        "relative_attention_max_distance", "feed_forward_proj", "layer_norm_epsilon",
        "decoder_start_token_id", "eos_token_id", "pad_token_id", "vocab_size"})
    EXPECT_EQ(config.at(key), base_config.at(key)) << key;
  EXPECT_EQ(config.value("tie_word_embeddings", true), true);
  EXPECT_EQ(testing::read_file(o.out + "/generation_config.json"),
            testing::read_file(base + "/generation_config.json"));
  EXPECT_EQ(testing::read_file(o.out + "/spiece.model"), testing::read_file(o.tokenizer));

  // Loaded back: the adapted model's logits, and not the base's.
  nn::T5Loaded loaded = nn::load_t5(o.out);
  EXPECT_TRUE(loaded.unexpected.empty());
  loaded.model->eval();
  const torch::Tensor expected = logits_of(*adapted);
  EXPECT_TENSOR_NEAR(logits_of(*loaded.model), expected, 1e-5);
  nn::T5Model plain = nn::load_t5(base).model;
  plain->eval();
  EXPECT_GT((logits_of(*plain) - expected).abs().max().item<double>(), 1e-3);
  // Nothing else beside the output folder.
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(HfExport, ACutVocabularyIsWrittenWithTheVocabSizeItHas) {
  REQUIRE_SHARED(kTiny);
  testing::TempDir dir;
  const std::string base = testing::shared_path(kTiny);
  nn::T5Model adapted = write_adapter(base, "full", dir.file("full"), 505);
  HfExportOptions o{dir.file("full"), base, "", dir.file("hf"), false};
  const InteropReport r = export_hf(o);
  ASSERT_EQ(r.notes.size(), 2u);  // the vocabulary, and no tokenizer in the base folder
  EXPECT_NE(r.notes[0].find("vocab_size 505"), std::string::npos) << r.notes[0];
  EXPECT_NE(r.notes[1].find("no tokenizer"), std::string::npos) << r.notes[1];
  EXPECT_EQ(json_of(o.out + "/config.json").at("vocab_size"), 505);
  EXPECT_EQ(shapes_of(o.out + "/model.safetensors").at("shared.weight"),
            (std::vector<int64_t>{505, 64}));
  nn::T5Model loaded = nn::load_t5(o.out).model;
  loaded->eval();
  EXPECT_TENSOR_NEAR(logits_of(*loaded), logits_of(*adapted), 1e-5);
}

TEST(HfExport, LoraIsMergedAndAnUntiedHeadIsStored) {
  testing::TempDir dir;
  testing::TinyT5 shape;
  shape.v1_1 = true;  // gated feed-forward, untied lm_head
  shape.vocab = 600;
  nn::T5Model base_model = testing::tiny_t5(shape, 2);
  nn::save_t5(*base_model, dir.file("base"));
  nn::T5Model adapted = write_adapter(dir.file("base"), "lora", dir.file("lora"));
  // A run folder: best_adapter/ and the run's recorded model.
  fs::create_directories(dir.file("run"));
  fs::rename(dir.file("lora"), dir.file("run/best_adapter"));
  testing::write_file(dir.file("run/run_config.json"),
                      nlohmann::json{{"model", dir.file("base")}}.dump());
  HfExportOptions o{dir.file("run"), "", "", dir.file("hf"), false};
  export_hf(o);
  const auto shapes = shapes_of(o.out + "/model.safetensors");
  EXPECT_EQ(shapes.at("lm_head.weight"), (std::vector<int64_t>{600, 8}));
  EXPECT_EQ(shapes.count("encoder.embed_tokens.weight"), 0u);
  EXPECT_EQ(shapes.count("encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"), 0u);
  EXPECT_EQ(json_of(o.out + "/config.json").at("tie_word_embeddings"), false);
  nn::T5Model loaded = nn::load_t5(o.out).model;
  loaded->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor ids = torch::tensor({{3, 7, 9, 1}, {4, 5, 1, 0}}, torch::kLong);
  const torch::Tensor labels = torch::tensor({{6, 2, 1}, {8, 1, -100}}, torch::kLong);
  const torch::Tensor mask = (ids != 0).to(torch::kLong);
  EXPECT_TENSOR_NEAR(loaded->forward(ids, mask, {}, labels).logits,
                     adapted->forward(ids, mask, {}, labels).logits, 1e-5);
  // Generation config from the model's ids when the base has none.
  const nlohmann::json g = json_of(o.out + "/generation_config.json");
  EXPECT_EQ(g.at("decoder_start_token_id"), 0);
  EXPECT_EQ(g.at("eos_token_id"), 1);
  EXPECT_EQ(g.at("pad_token_id"), 0);
}

TEST(HfExport, RefusesWithoutWritingAnything) {
  testing::TempDir dir;
  testing::TinyT5 shape;
  nn::T5Model base_model = testing::tiny_t5(shape, 2);
  nn::save_t5(*base_model, dir.file("base"));
  write_adapter(dir.file("base"), "bitfit", dir.file("bitfit"));
  HfExportOptions o{dir.file("bitfit"), dir.file("base"), "", dir.file("hf"), false};
  try {
    export_hf(o);
    ADD_FAILURE() << "bitfit exported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("method bitfit"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(o.out));

  // No base model known: a usage error.
  write_adapter(dir.file("base"), "full", dir.file("full"));
  o = {dir.file("full"), "", "", dir.file("hf"), false};
  EXPECT_THROW(export_hf(o), UsageError);

  // A broken weights file: an error naming it, and no output folder (nor a temporary one).
  testing::write_file(dir.file("full/adapter_model.safetensors"), "not safetensors");
  o.model = dir.file("base");
  try {
    export_hf(o);
    ADD_FAILURE() << "a broken adapter exported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("adapter_model.safetensors"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(o.out));
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();

  // Never an output folder that holds the input, even with overwrite.
  o.out = dir.path();
  o.overwrite = true;
  EXPECT_THROW(export_hf(o), UsageError);
  EXPECT_TRUE(fs::exists(dir.file("full/adapter_config.json")));
  o.out = dir.file("hf");
  o.overwrite = false;

  // An existing folder needs overwrite, which replaces it whole.
  write_adapter(dir.file("base"), "full", dir.file("full"));
  fs::create_directories(o.out);
  testing::write_file(o.out + "/old.txt", "old");
  EXPECT_THROW(export_hf(o), UsageError);
  EXPECT_TRUE(fs::exists(o.out + "/old.txt"));
  o.overwrite = true;
  export_hf(o);
  EXPECT_FALSE(fs::exists(o.out + "/old.txt"));
  EXPECT_TRUE(fs::exists(o.out + "/model.safetensors"));
}

}  // namespace
}  // namespace compacter::interop::hf_export_test

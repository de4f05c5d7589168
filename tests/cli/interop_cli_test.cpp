// `compacter export` and `compacter import` as a user runs them: a LoRA run exported to PEFT and
// imported back gives the same tensors and the same `forward` output; `--to hf` writes a folder
// that `forward` reads as a plain model; usage mistakes exit 2 (unknown format, an existing
// output without --force), bad input exits 1 with one line naming the file.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "compacter/io/safetensors.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "support/test_support.h"
#include "support/tiny_t5.h"

namespace compacter::interop_cli_test {
namespace {

namespace fs = std::filesystem;

// A base with room for the byte-level tokenizer's 384 ids, and a LoRA adapter on it (cut to
// those ids, as every command cuts it).
void write_base_and_lora(const testing::TempDir& dir) {
  testing::TinyT5 shape;
  shape.vocab = 400;
  nn::T5Model model = testing::tiny_t5(shape, 4);
  nn::save_t5(*model, dir.file("base"));
  model->resize_vocab(384);
  const peft::PeftOptions o = peft::method_defaults("lora");
  peft::attach("lora", o, *model, 2);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(3);
    for (auto& p : peft::trainable_parameters(*model)) p.add_(torch::randn_like(p) * 0.2);
  }
  peft::save_adapter(*model, {"lora", o, 2}, dir.file("lora"));
}

// `compacter forward` on a fixed batch: its logits.
torch::Tensor forward_logits(const testing::TempDir& dir, const std::string& args,
                             const std::string& name) {
  const std::string inputs = dir.file("inputs.safetensors");
  if (!fs::exists(inputs)) {
    const torch::Tensor ids = torch::tensor({{3, 7, 9, 1}, {4, 5, 1, 0}}, torch::kLong);
    const torch::Tensor labels = torch::tensor({{6, 2, 1}, {8, 1, -100}}, torch::kLong);
    safetensors::save(
        inputs,
        {{"input_ids", ids}, {"attention_mask", (ids != 0).to(torch::kLong)}, {"labels", labels}});
  }
  const std::string out = dir.file(name + ".safetensors");
  const auto r =
      testing::run_compacter("forward " + args + " --inputs " + inputs + " --out " + out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return torch::zeros({1});
  return safetensors::File::open(out).load("logits");
}

TEST(InteropCli, LoraToPeftAndBack) {
  testing::TempDir dir;
  write_base_and_lora(dir);
  auto r = testing::run_compacter("export --to peft " + dir.file("lora") + " --out " +
                                  dir.file("peft") + " --model " + dir.file("base"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("lora as a PEFT adapter"), std::string::npos) << r.err;
  r = testing::run_compacter("import --from peft " + dir.file("peft") + " --model " +
                             dir.file("base") + " --tokenizer byte --out " + dir.file("back"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const safetensors::File a = safetensors::File::open(dir.file("lora/adapter_model.safetensors"));
  const safetensors::File b = safetensors::File::open(dir.file("back/adapter_model.safetensors"));
  ASSERT_EQ(a.header().tensors.size(), b.header().tensors.size());
  for (const auto& t : a.header().tensors)
    EXPECT_TRUE(torch::equal(a.load(t.name), b.load(t.name))) << t.name;
  const std::string model = "--model " + dir.file("base") + " --adapter ";
  EXPECT_TRUE(torch::equal(forward_logits(dir, model + dir.file("lora"), "one"),
                           forward_logits(dir, model + dir.file("back"), "two")));

  // Again without --force: a usage error naming the folder and the flag; nothing changed.
  r = testing::run_compacter("export --to peft " + dir.file("lora") + " --out " + dir.file("peft"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("already exists (pass --force"), std::string::npos) << r.err;
  r = testing::run_compacter("export --to peft " + dir.file("lora") + " --out " + dir.file("peft") +
                             " --force");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(InteropCli, HfFolderIsAPlainModel) {
  testing::TempDir dir;
  write_base_and_lora(dir);
  auto r = testing::run_compacter("export --to hf " + dir.file("lora") + " --model " +
                                  dir.file("base") + " --out " + dir.file("hf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("note: vocab_size 384"), std::string::npos) << r.err;
  const torch::Tensor merged = forward_logits(dir, "--model " + dir.file("hf"), "merged");
  const torch::Tensor adapted = forward_logits(
      dir, "--model " + dir.file("base") + " --adapter " + dir.file("lora"), "adapted");
  ASSERT_EQ(merged.sizes(), adapted.sizes());
  EXPECT_LT((merged - adapted).abs().max().item<double>(), 1e-5);
}

TEST(InteropCli, MistakesAndBadInput) {
  testing::TempDir dir;
  auto r = testing::run_compacter("export --to onnx x --out y");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = testing::run_compacter("import --from peft " + dir.file("missing") + " --model " +
                             dir.file("base") + " --out " + dir.file("out"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(dir.file("missing")), std::string::npos) << r.err;
  EXPECT_EQ(testing::lines_of(r.err).size(), 1u) << r.err;
  fs::create_directories(dir.file("empty"));
  r = testing::run_compacter("import --from peft " + dir.file("empty") + " --model " +
                             dir.file("base") + " --out " + dir.file("out"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("empty/adapter_config.json: not found"), std::string::npos) << r.err;
  r = testing::run_compacter("export --to hf " + dir.file("empty") + " --out " + dir.file("out"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("adapter_config.json"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir.file("out")));
}

}  // namespace
}  // namespace compacter::interop_cli_test

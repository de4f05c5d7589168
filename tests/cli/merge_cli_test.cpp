// `compacter merge` as a user runs it: a LoRA and an (IA)^3 adapter folded into a base written by
// `compacter init-model` give a plain Hugging Face T5 folder whose logits equal the adapted
// model's within 1e-5; methods that cannot be merged are refused, naming the method.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "compacter/nn/checkpoint.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "support/tensor_near.h"
#include "support/test_support.h"

namespace compacter::merge_cli_test {
namespace {

torch::Tensor merge_logits(nn::T5ModelImpl& model) {
  torch::NoGradGuard no_grad;
  const torch::Tensor ids = torch::tensor({{3, 7, 9, 1}, {4, 5, 1, 0}}, torch::kLong);
  const torch::Tensor labels = torch::tensor({{6, 2, 1}, {8, 1, -100}}, torch::kLong);
  return model.forward(ids, (ids != 0).to(torch::kLong), {}, labels).logits;
}

TEST(MergeCli, WritesAPlainCheckpointWithTheAdaptedLogits) {
  testing::TempDir dir;
  auto r = testing::init_tiny_t5_with_t5_vocabulary(dir.file("base"));  // 32,128 rows
  ASSERT_EQ(r.exit_code, 0) << r.err;
  testing::write_file(dir.file("base/spiece.model"), "tokenizer bytes");
  for (const std::string method : {"lora", "ia3"}) {
    SCOPED_TRACE(method);
    auto model = nn::load_t5(dir.file("base")).model;
    model->resize_vocab(32100);  // as train does with T5's tokenizer: merge cuts the base alike
    model->eval();
    peft::PeftOptions o = peft::method_defaults(method);
    peft::attach(method, o, *model, 3);
    {
      torch::NoGradGuard no_grad;
      torch::manual_seed(4);
      for (auto& p : peft::trainable_parameters(*model)) p.add_(torch::randn_like(p) * 0.1);
    }
    peft::save_adapter(*model, {method, o, 3}, dir.file(method));
    const std::string out = dir.file(method + "-merged");
    r = testing::run_compacter("merge --model " + dir.file("base") + " --adapter " +
                               dir.file(method) + " --out " + out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find(method + " merged into"), std::string::npos) << r.err;
    EXPECT_EQ(testing::read_file(out + "/spiece.model"), "tokenizer bytes");
    nn::T5Loaded merged = nn::load_t5(out);
    EXPECT_TRUE(merged.unexpected.empty());
    EXPECT_EQ(merged.model->config().vocab_size, 32100);
    merged.model->eval();
    const torch::Tensor want = merge_logits(*model), got = merge_logits(*merged.model);
    EXPECT_TENSOR_NEAR(got, want, 1e-5);
    auto base = nn::load_t5(dir.file("base")).model;
    base->resize_vocab(32100);
    base->eval();
    EXPECT_GT((merge_logits(*base) - want).abs().max().item<double>(), 1e-3);
    // A second run needs --force.
    r = testing::run_compacter("merge --model " + dir.file("base") + " --adapter " +
                               dir.file(method) + " --out " + out);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  }
  auto model = nn::load_t5(dir.file("base")).model;
  const peft::PeftOptions o = peft::method_defaults("bitfit");
  peft::attach("bitfit", o, *model, 1);
  peft::save_adapter(*model, {"bitfit", o, 1}, dir.file("bitfit"));
  r = testing::run_compacter("merge --model " + dir.file("base") + " --adapter " +
                             dir.file("bitfit") + " --out " + dir.file("bitfit-merged"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("method bitfit cannot be merged"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("bitfit-merged")));
}

}  // namespace
}  // namespace compacter::merge_cli_test

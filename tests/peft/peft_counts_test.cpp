// Trainable-parameter counts (spec §7.1-§7.4, §11 item 1): t5-base with the vocabulary resized to
// 32,100 (backbone 222,882,048) at d = 24 / 48 / 96 and n = 4 / 8 / 12, and t5-small (Table 9).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <string>

#include "compacter/io/t5_config.h"
#include "compacter/nn/t5.h"
#include "compacter/peft/methods.h"

namespace compacter::peft {
namespace {

nn::T5Model resized_model(const std::string& name) {
  T5Config c = builtin_t5_config(name);
  c.vocab_size = 32100;  // resize_token_embeddings(len(tokenizer)) (spec §1.1, §9 #16)
  return nn::T5Model(c);
}

// The trainable count depends only on d_model and the block counts (the backbone is frozen except
// its norms), so the per-method counts use a model of the same d_model and depth whose frozen
// attention, feed-forward and embedding are shrunk to one unit; Backbone checks the real shapes.
nn::T5Model shrunk_model(const std::string& model_name) {
  T5Config c = builtin_t5_config(model_name);
  c.vocab_size = 2;  // room for the special ids
  c.d_kv = 1;
  c.num_heads = 1;
  c.d_ff = 1;
  return nn::T5Model(c);
}

int64_t count(const std::string& model_name, const std::string& method, int64_t reduction,
              int64_t n) {
  auto model = shrunk_model(model_name);
  PeftOptions o = method_defaults(method);
  o.reduction_factor = reduction;
  o.n = n;
  attach(method, o, *model, 0);
  return count_trainable(*model);
}

TEST(PeftCounts, Backbone) {
  auto base = resized_model("t5-base");
  EXPECT_EQ(count_parameters(*base), 222882048);
  auto small = resized_model("t5-small");
  EXPECT_EQ(count_parameters(*small), 60492288);
  // Layer norms only: 62 x 768 (spec §1.3).
  attach("adapter", method_defaults("adapter"), *base, 0);
  int64_t norms = 0;
  for (auto* ln : base->layer_norms()) norms += ln->weight.requires_grad() ? ln->weight.numel() : 0;
  EXPECT_EQ(norms, 47616);
  EXPECT_EQ(base->layer_norms().size(), 62u);
  EXPECT_EQ(count_trainable(*base), 1855104);  // the full-size model gives the same count
  EXPECT_EQ(count_parameters(*base), 222882048 + 1807488);
}

// Spec §7.4 (d = 24 is §7.2 / Table 1).
TEST(PeftCounts, T5BaseDenseAndLowRank) {
  const std::map<std::string, std::vector<int64_t>> expected{
      {"adapter", {1855104, 3625728, 7166976}},
      {"pfeiffer", {951360, 1836672, 3607296}},
      {"adapterdrop", {1101984, 2134848, 4200576}},
      {"lowrank", {161664, 165120, 172032}},
  };
  const int64_t reductions[] = {32, 16, 8};  // d = 24, 48, 96
  for (const auto& [method, counts] : expected)
    for (size_t i = 0; i < 3; ++i)
      EXPECT_EQ(count("t5-base", method, reductions[i], 4), counts[i])
          << method << " d=" << 768 / reductions[i];
}

TEST(PeftCounts, T5BasePhmFamily) {
  // [method][d index][n index], n = 4, 8, 12.
  const std::map<std::string, std::vector<std::vector<int64_t>>> expected{
      {"phm", {{534144, 355968, 398976}, {977664, 578304, 547584}, {1864704, 1022976, 844800}}},
      {"compacter", {{161728, 162176, 163392}, {165184, 165632, 166848}, {172096, 172544, 173760}}},
      {"compacter++",
       {{104704, 105152, 106368}, {106432, 106880, 108096}, {109888, 110336, 111552}}},
  };
  const int64_t reductions[] = {32, 16, 8};
  const int64_t ns[] = {4, 8, 12};
  for (const auto& [method, table] : expected)
    for (size_t i = 0; i < 3; ++i)
      for (size_t j = 0; j < 3; ++j)
        EXPECT_EQ(count("t5-base", method, reductions[i], ns[j]), table[i][j])
            << method << " d=" << 768 / reductions[i] << " n=" << ns[j];
}

// T5-small, d = 16 (Table 9). The integers are ours (spec §7.3 arithmetic); the percentages are
// the paper's, to its printed precision.
TEST(PeftCounts, T5Small) {
  struct Row {
    const char* method;
    int64_t n;
    int64_t count;
    double paper_percent;
  };
  const Row rows[] = {
      {"adapter", 4, 422272, 0.698},     {"adapterdrop", 4, 84032, 0.139},
      {"pfeiffer", 4, 219328, 0.363},    {"lowrank", 4, 54400, 0.090},
      {"phm", 4, 130432, 0.216},         {"phm", 8, 102784, 0.170},
      {"phm", 16, 250240, 0.414},        {"compacter", 4, 54464, 0.090},
      {"compacter", 8, 54912, 0.091},    {"compacter", 16, 58496, 0.097},
      {"compacter++", 4, 35456, 0.059},  {"compacter++", 8, 35904, 0.059},
      {"compacter++", 16, 39488, 0.065},
  };
  for (const Row& r : rows) {
    const int64_t c = count("t5-small", r.method, 32, r.n);
    EXPECT_EQ(c, r.count) << r.method << " n=" << r.n;
    const double percent = 100.0 * static_cast<double>(c) / 60492288.0;
    EXPECT_NEAR(std::round(percent * 1000.0) / 1000.0, r.paper_percent, 1e-9)
        << r.method << " n=" << r.n;
  }
}

// The other Table 9 rows, their integers by hand for t5-small (d_model 512, inner 8 x 64 = 512,
// d_ff 2048, 6 + 6 blocks, 32,100 rows after the resize):
//   prompt: 100 x 512 = 51,200 (0.0846%, paper 0.085); SAID: d0 = 20,000 (0.0331%, paper 0.033);
//   BitFit: encoder 6 x (q,k,v,o 4 x 512 + wi 2048 + wo 512) = 27,648; decoder 6 x (8 x 512 +
//   2048 + 512) = 39,936; block norms 6 x 2 x 512 + 6 x 3 x 512 = 15,360; lm_head 32,100;
//   in all 115,044 (0.1902%, paper 0.190).
// BitFit's biases follow every shape and prompt-T copies 100 embedding rows, so those two count
// on the real t5-small; the others on the shrunk model.
int64_t t5_small_count(const std::string& method) {
  if (method != "bitfit" && method != "prompt-t") return count("t5-small", method, 32, 4);
  auto model = resized_model("t5-small");
  attach(method, method_defaults(method), *model, 0);
  return count_trainable(*model);
}

TEST(PeftCounts, T5SmallPromptSaidBitFit) {
  struct Row {
    const char* method;
    int64_t count;
    double paper_percent;
  };
  const Row rows[] = {{"prompt-r", 51200, 0.085},
                      {"prompt-t", 51200, 0.085},
                      {"said", 20000, 0.033},
                      {"bitfit", 115044, 0.190}};
  for (const Row& r : rows) {
    const int64_t c = t5_small_count(r.method);
    EXPECT_EQ(c, r.count) << r.method;
    const double percent = 100.0 * static_cast<double>(c) / 60492288.0;
    EXPECT_NEAR(std::round(percent * 1000.0) / 1000.0, r.paper_percent, 1e-9) << r.method;
  }
}

// With a fixed A the count drops by n^3; with frozen norms it is the adapters alone.
TEST(PeftCounts, Switches) {
  auto model = shrunk_model("t5-base");
  PeftOptions o = method_defaults("compacter");
  o.learn_phm = false;
  o.train_layer_norms = false;
  attach("compacter", o, *model, 0);
  EXPECT_EQ(count_trainable(*model), 161728 - 64 - 47616);
}

}  // namespace
}  // namespace compacter::peft

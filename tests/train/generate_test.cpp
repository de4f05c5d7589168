// Greedy generation with the incremental decoder equals step-by-step argmax over full forward
// passes without any cache.
#include <torch/torch.h>

#include "compacter/nn/checkpoint.h"
#include "compacter/train/generate.h"
#include "support/test_support.h"

namespace compacter {
namespace {

// Reference: re-run the whole decoder on the growing prefix at every step (no cache).
torch::Tensor generate_without_cache(nn::T5ModelImpl& model, const torch::Tensor& ids,
                                     const torch::Tensor& mask, int64_t max_new) {
  torch::NoGradGuard g;
  const auto& c = model.config();
  const int64_t B = ids.size(0);
  std::vector<std::vector<int64_t>> out(B);
  std::vector<bool> done(B, false);
  torch::Tensor prefix = torch::full({B, 1}, c.decoder_start_token_id, torch::kLong);
  for (int64_t step = 0; step < max_new; ++step) {
    auto logits = model.forward(ids, mask, prefix, {}).logits;
    torch::Tensor next = logits.select(1, -1).argmax(-1);
    for (int64_t b = 0; b < B; ++b) {
      int64_t t = done[b] ? c.pad_token_id : next[b].item<int64_t>();
      out[b].push_back(t);
      if (t == c.eos_token_id) done[b] = true;
      next[b] = t;
    }
    prefix = torch::cat({prefix, next.unsqueeze(1)}, 1);
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
  }
  torch::Tensor r = torch::empty({B, static_cast<int64_t>(out[0].size())}, torch::kLong);
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = 0; t < out[b].size(); ++t) r[b][t] = out[b][t];
  return r;
}

TEST(Generate, CachedEqualsUncachedArgmax) {
  for (bool v11 : {false, true}) {
    SCOPED_TRACE(v11 ? "v1.1" : "v1.0");
    T5Config c;
    c.vocab_size = 40;
    c.d_model = 32;
    c.d_kv = 8;
    c.d_ff = 48;
    c.num_layers = 2;
    c.num_decoder_layers = 3;
    c.num_heads = 4;
    c.relative_attention_num_buckets = 8;
    c.relative_attention_max_distance = 6;  // shorter than the generated length
    if (v11) {
      c.feed_forward_proj = "gated-gelu";
      c.tie_word_embeddings = false;
    }
    nn::T5Model model(c);
    model->init_weights(v11 ? 11 : 10);
    // Make </s> likely for some rows so early stopping and padding are exercised.
    {
      torch::NoGradGuard g;
      model->shared->weight[1].mul_(3.0);
    }
    model->eval();
    torch::manual_seed(3);
    torch::Tensor ids = torch::randint(3, 40, {4, 7}, torch::kLong);
    torch::Tensor mask = torch::ones({4, 7}, torch::kLong);
    mask[1].narrow(0, 4, 3).fill_(0);
    mask[3].narrow(0, 2, 5).fill_(0);
    ids.masked_fill_(mask == 0, 0);
    GenerateOptions o;
    o.max_new_tokens = 12;
    torch::Tensor cached = greedy_generate(*model, ids, mask, o);
    torch::Tensor reference = generate_without_cache(*model, ids, mask, 12);
    EXPECT_TRUE(torch::equal(cached, reference)) << cached << "\n" << reference;

    // Without stopping (the inference bench): every step runs, the tokens are the same, the
    // ended rows padded; on_step sees each step's tokens in order.
    o.stop_when_all_finished = false;
    std::vector<torch::Tensor> seen;
    o.on_step = [&](int64_t step, const torch::Tensor& tokens) {
      EXPECT_EQ(step, static_cast<int64_t>(seen.size()));
      seen.push_back(tokens.clone());
    };
    torch::Tensor forced = greedy_generate(*model, ids, mask, o);
    ASSERT_EQ(forced.size(1), 12);
    ASSERT_EQ(seen.size(), 12u);
    const int64_t ended = reference.size(1);
    EXPECT_TRUE(torch::equal(forced.narrow(1, 0, ended), reference));
    if (ended < 12) {
      EXPECT_TRUE(forced.narrow(1, ended, 12 - ended).eq(c.pad_token_id).all().item<bool>())
          << forced;
    }
    for (int64_t t = 0; t < 12; ++t) EXPECT_TRUE(torch::equal(seen[t], forced.select(1, t)));
  }
}

TEST(Generate, TinyCheckpointFromCommandLine) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  // The tiny model has 512 rows; ids beyond that are refused with a clear message.
  auto r = testing::run_compacter(
      "generate --model " + testing::shared_path("data/tiny-t5") + " --tokenizer " +
      testing::shared_path("data/t5-tokenizer/spiece.model") + " --text 'Hello world'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("vocabulary"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace compacter

namespace compacter {
namespace {

TEST(Generate, CommandPrintsOneLinePerInput) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  // ByT5's byte-level tokenizer (384 ids) fits the tiny model's 512 rows; T5's 32,100-id
  // spiece.model does not, and is refused (tests/train/base_model_test.cpp).
  auto r = testing::run_compacter("generate --model " + testing::shared_path("data/tiny-t5") +
                                      " --tokenizer byte --max-new-tokens 5 --show-ids",
                                  "the of the\nin a\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    ++n;
    const auto open = line.find('['), close = line.find(']');
    ASSERT_NE(open, std::string::npos) << line;
    std::istringstream ids(line.substr(open + 1, close - open - 1));
    int64_t id, count = 0;
    while (ids >> id) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, 512);
      ++count;
    }
    EXPECT_GE(count, 1);
    EXPECT_LE(count, 5);
  }
  EXPECT_EQ(n, 2);
}

}  // namespace
}  // namespace compacter

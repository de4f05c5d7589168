// T5 against independent references: Hugging Face's outputs for the tiny checkpoint in
// ../shared/data/tiny-t5, and the naive double-precision oracle (tests/support/naive_t5) for
// v1.1, odd configs and padded batches.
#include <torch/torch.h>

#include <filesystem>

#include "compacter/core/error.h"
#include "compacter/io/hf_names.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/nn/t5.h"
#include "support/naive_t5.h"
#include "support/raw_safetensors.h"
#include "support/tensor_near.h"
#include "support/test_support.h"

namespace compacter {
namespace {

using testing::naive_random_t5_weights;
using testing::naive_t5_forward;
using testing::raw_load_safetensors;

const char* kTinyDir = "data/tiny-t5";

torch::Tensor to_tensor(const std::vector<double>& v, const std::vector<int64_t>& shape) {
  return torch::tensor(v, torch::kDouble).view(shape);
}

// Copies HF-named weights into a fresh model built from `c`.
nn::T5Model model_with_weights(const T5Config& c, const std::map<std::string, torch::Tensor>& w) {
  nn::T5Model model(c);
  torch::NoGradGuard no_grad;
  auto params = model->named_parameters();
  for (const auto& spec : hf_t5_tensors(c)) params[spec.name].copy_(w.at(spec.name));
  model->eval();
  return model;
}

TEST(T5Model, TinyMatchesHuggingFace) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  auto model = nn::load_t5(testing::shared_path(kTinyDir)).model;
  model->eval();
  auto ref = raw_load_safetensors(testing::shared_path("data/tiny-t5/reference.safetensors"));
  torch::NoGradGuard no_grad;
  auto out = model->forward(ref["input_ids"], ref["attention_mask"], ref["decoder_input_ids"],
                            ref["labels"]);
  EXPECT_TENSOR_NEAR(out.logits, ref["logits"], 1e-5);
  EXPECT_TENSOR_NEAR(out.encoder_last_hidden_state, ref["encoder_last_hidden_state"], 1e-5);
  EXPECT_NEAR(out.loss.item<double>(), ref["loss"].item<double>(), 1e-5);

  // Without decoder_input_ids the labels are shifted right (start 0, -100 -> pad).
  auto shifted = model->forward(ref["input_ids"], ref["attention_mask"], {}, ref["labels"]);
  EXPECT_TENSOR_NEAR(shifted.logits, ref["logits"], 1e-5);
}

TEST(T5Model, ForwardCommandMatchesHuggingFace) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  testing::TempDir tmp;
  auto r =
      testing::run_compacter("forward --model " + testing::shared_path(kTinyDir) + " --inputs " +
                             testing::shared_path("data/tiny-t5/reference.safetensors") +
                             " --out " + tmp.file("out.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto out = raw_load_safetensors(tmp.file("out.safetensors"));
  auto ref = raw_load_safetensors(testing::shared_path("data/tiny-t5/reference.safetensors"));
  EXPECT_TENSOR_NEAR(out["logits"], ref["logits"], 1e-5);
  EXPECT_TENSOR_NEAR(out["encoder_last_hidden_state"], ref["encoder_last_hidden_state"], 1e-5);
  EXPECT_NEAR(out["loss"].item<double>(), ref["loss"].item<double>(), 1e-5);
}

TEST(T5Model, ForwardCommandRejectsBadInputs) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  testing::TempDir tmp;
  auto r = testing::run_compacter("forward --model " + testing::shared_path(kTinyDir) +
                                  " --inputs " + tmp.file("nope.safetensors") + " --out " +
                                  tmp.file("out.safetensors"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nope.safetensors"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("out.safetensors")));
}

struct OddCase {
  std::string name;
  std::function<void(T5Config&)> edit;
  int64_t src_len, tgt_len;
};

// Several configs and padded batches against the naive oracle.
TEST(T5Model, OddConfigsMatchNaiveReference) {
  std::vector<OddCase> cases = {
      {"v1.0", [](T5Config&) {}, 7, 5},
      {"v1.1 gated-gelu untied",
       [](T5Config& c) {
         c.feed_forward_proj = "gated-gelu";
         c.tie_word_embeddings = false;
       },
       9, 4},
      {"decoder layers != encoder layers",
       [](T5Config& c) {
         c.num_layers = 3;
         c.num_decoder_layers = 1;
       },
       6, 6},
      {"few buckets, short distance, long sequences",
       [](T5Config& c) {
         c.relative_attention_num_buckets = 6;
         c.relative_attention_max_distance = 5;
       },
       23, 19},
      {"gated-relu, d_kv * heads != d_model",
       [](T5Config& c) {
         c.feed_forward_proj = "gated-relu";
         c.d_kv = 5;
         c.num_heads = 3;
       },
       8, 3},
      {"gelu (erf)", [](T5Config& c) { c.feed_forward_proj = "gelu"; }, 5, 5},
  };
  for (const auto& oc : cases) {
    SCOPED_TRACE(oc.name);
    T5Config c;
    c.vocab_size = 50;
    c.d_model = 16;
    c.d_kv = 4;
    c.d_ff = 24;
    c.num_layers = 2;
    c.num_heads = 4;
    c.relative_attention_num_buckets = 8;
    c.relative_attention_max_distance = 12;
    oc.edit(c);
    auto weights = naive_random_t5_weights(c, 1234);
    auto model = model_with_weights(c, weights);

    torch::manual_seed(7);
    const int64_t B = 3;
    torch::Tensor ids = torch::randint(3, c.vocab_size, {B, oc.src_len}, torch::kLong);
    torch::Tensor mask = torch::ones({B, oc.src_len}, torch::kLong);
    // Padded rows of different lengths.
    mask[1].narrow(0, oc.src_len - 2, 2).fill_(0);
    mask[2].narrow(0, 1, oc.src_len - 1).fill_(0);
    ids.masked_fill_(mask == 0, 0);
    torch::Tensor labels = torch::randint(2, c.vocab_size, {B, oc.tgt_len}, torch::kLong);
    labels[2].narrow(0, 1, oc.tgt_len - 1).fill_(-100);
    torch::Tensor dec = nn::shift_right(labels, 0, 0);
    EXPECT_TRUE(torch::equal(dec, testing::naive_shift_right(labels, 0, 0)));

    torch::NoGradGuard no_grad;
    auto out = model->forward(ids, mask, dec, labels);
    auto ref = naive_t5_forward(c, weights, ids, mask, dec, labels);
    EXPECT_TENSOR_NEAR(out.logits, to_tensor(ref.logits, ref.logits_shape), 2e-5);
    // Padded encoder positions still have states; HF computes them too, so all are compared.
    EXPECT_TENSOR_NEAR(out.encoder_last_hidden_state,
                       to_tensor(ref.encoder_last_hidden_state, ref.encoder_shape), 2e-5);
    EXPECT_NEAR(out.loss.item<double>(), ref.loss, 2e-5);
  }
}

TEST(T5Model, RelativePositionBucketsMatchNaive) {
  for (bool bidirectional : {true, false}) {
    for (auto [buckets, dist] :
         std::vector<std::pair<int64_t, int64_t>>{{32, 128}, {8, 12}, {6, 5}, {64, 1000}}) {
      torch::Tensor rel = torch::arange(-1200, 1200, torch::kLong);
      torch::Tensor got = nn::relative_position_bucket(rel, bidirectional, buckets, dist);
      for (int64_t i = 0; i < rel.size(0); ++i) {
        const int64_t r = rel[i].item<int64_t>();
        ASSERT_EQ(got[i].item<int64_t>(),
                  testing::naive_relative_position_bucket(r, bidirectional, buckets, dist))
            << "rel " << r << " buckets " << buckets << " max_distance " << dist;
      }
    }
  }
}

TEST(T5Model, DropoutOnlyInTraining) {
  T5Config c;
  c.vocab_size = 40;
  c.d_model = 16;
  c.d_kv = 4;
  c.d_ff = 32;
  c.num_layers = 1;
  c.num_heads = 4;
  c.dropout_rate = 0.3;
  nn::T5Model model(c);
  torch::Tensor ids = torch::randint(3, 40, {2, 6}, torch::kLong);
  torch::Tensor labels = torch::randint(3, 40, {2, 4}, torch::kLong);
  model->eval();
  auto a = model->forward(ids, {}, {}, labels).logits;
  auto b = model->forward(ids, {}, {}, labels).logits;
  EXPECT_TENSOR_NEAR(a, b, 0);
  model->train();
  auto d = model->forward(ids, {}, {}, labels).logits;
  EXPECT_FALSE(torch::allclose(a, d));
}

TEST(T5Model, LossIgnoresMinus100AndAveragesTheRest) {
  T5Config c;
  c.vocab_size = 30;
  c.d_model = 8;
  c.d_kv = 2;
  c.d_ff = 16;
  c.num_layers = 1;
  c.num_heads = 4;
  nn::T5Model model(c);
  model->eval();
  torch::Tensor ids = torch::randint(3, 30, {2, 5}, torch::kLong);
  torch::Tensor labels = torch::tensor({4, 5, 1, 6, -100, -100}, torch::kLong).view({2, 3});
  auto out = model->forward(ids, {}, {}, labels);
  // Naive: mean over the 4 kept positions of -log softmax(logits)[label].
  auto logp = torch::log_softmax(out.logits.to(torch::kDouble), -1);
  double sum = 0;
  int n = 0;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 3; ++t) {
      int64_t l = labels[b][t].item<int64_t>();
      if (l == -100) continue;
      sum -= logp[b][t][l].item<double>();
      ++n;
    }
  EXPECT_NEAR(out.loss.item<double>(), sum / n, 1e-5);
}

TEST(T5Model, Bf16IsCloseToFp32) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  nn::T5LoadOptions o;
  o.dtype = torch::kBFloat16;
  auto model = nn::load_t5(testing::shared_path(kTinyDir), o).model;
  model->eval();
  auto ref = raw_load_safetensors(testing::shared_path("data/tiny-t5/reference.safetensors"));
  torch::NoGradGuard no_grad;
  auto out = model->forward(ref["input_ids"], ref["attention_mask"], {}, ref["labels"]);
  EXPECT_EQ(out.logits.scalar_type(), torch::kBFloat16);
  EXPECT_TENSOR_NEAR(out.logits, ref["logits"], 0.15);
  EXPECT_NEAR(out.loss.item<double>(), ref["loss"].item<double>(), 0.05);
}

}  // namespace
}  // namespace compacter

// The base-model weights fingerprint (nn/fingerprint.h): the same weights give the same
// fingerprint whatever their dtype and whether the vocabulary was cut; other weights another.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "compacter/nn/checkpoint.h"
#include "compacter/nn/fingerprint.h"
#include "support/test_support.h"
#include "support/tiny_t5.h"

namespace compacter::nn::fingerprint_test {

TEST(WeightsFingerprint, SameWeightsSameFingerprint) {
  T5Model a = testing::tiny_t5({}, 1), b = testing::tiny_t5({}, 1);
  EXPECT_EQ(weights_fingerprint(*a), weights_fingerprint(*b));
  EXPECT_EQ(weights_fingerprint(*a).size(), 16u);
}

TEST(WeightsFingerprint, IndependentOfDtypeAndOfTheVocabularyCut) {
  T5Model a = testing::tiny_t5({}, 1);
  const std::string want = weights_fingerprint(*a);
  T5Model bf16 = testing::tiny_t5({}, 1);
  bf16->to(torch::kBFloat16);
  EXPECT_EQ(weights_fingerprint(*bf16), want);
  // A vocabulary larger than the 256 rows sampled, cut as the paper cuts T5's 32,128 to 32,100.
  testing::TinyT5 shape;
  shape.vocab = 300;
  T5Model full = testing::tiny_t5(shape, 1), cut = testing::tiny_t5(shape, 1);
  cut->resize_vocab(290);
  EXPECT_EQ(weights_fingerprint(*cut), weights_fingerprint(*full));
}

TEST(WeightsFingerprint, OtherWeightsAnotherFingerprint) {
  T5Model a = testing::tiny_t5({}, 1), b = testing::tiny_t5({}, 2);
  EXPECT_NE(weights_fingerprint(*a), weights_fingerprint(*b));
  // Another training run moves every weight a little: that shows too.
  T5Model c = testing::tiny_t5({}, 1);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : c->parameters()) p.add_(torch::randn_like(p) * 0.05);
  }
  EXPECT_NE(weights_fingerprint(*c), weights_fingerprint(*a));
}

TEST(WeightsFingerprint, TheSameCheckpointInEveryFileFormat) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  REQUIRE_SHARED("data/tiny-t5-bin/pytorch_model.bin");
  REQUIRE_SHARED("data/tiny-t5-bin/sharded/pytorch_model.bin.index.json");
  const std::string want =
      weights_fingerprint(*load_t5(testing::shared_path("data/tiny-t5")).model);
  EXPECT_EQ(weights_fingerprint(*load_t5(testing::shared_path("data/tiny-t5-bin")).model), want);
  EXPECT_EQ(weights_fingerprint(*load_t5(testing::shared_path("data/tiny-t5-bin/sharded")).model),
            want);
  T5LoadOptions bf16;
  bf16.dtype = torch::kBFloat16;
  EXPECT_EQ(weights_fingerprint(*load_t5(testing::shared_path("data/tiny-t5"), bf16).model), want);
}

}  // namespace compacter::nn::fingerprint_test

// What the serving tests (tests/serve: continuous batching, mixed batches, the HTTP server)
// share: a tiny T5 with T5's vocabulary and adapters with moved tensors in one temporary folder,
// the settings they decode with, and the independent reference they compare with: a fresh model
// with the adapter attached the ordinary way (nn::load_t5 + peft::load_adapter) decoding one
// input alone with decoding::generate (no serving code); and a test fixture over them.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "compacter/nn/t5.h"
#include "compacter/train/decoding/decode.h"
#include "support/test_support.h"

namespace compacter {
class T5Tokenizer;
}

namespace compacter::testing {

// dir/model: a tiny T5 with T5's vocabulary (init_tiny_t5_with_t5_vocabulary); dir/adapter-M:
// an adapter of each method M (write_moved_adapter) drawn after torch::manual_seed(seed).
class AdapterModels {
 public:
  // Writes the model and the adapters; returns the model's result (exit_code 0 on success; no
  // adapter is written otherwise).
  CommandResult write(uint64_t seed, const std::vector<std::string>& methods, double noise);
  std::string model_dir() const { return dir_.path() + "/model"; }
  std::string adapter_dir(const std::string& method) const {
    return dir_.path() + "/adapter-" + method;
  }
  const TempDir& dir() const { return dir_; }
  // ../shared's T5 tokenizer (spiece.model).
  static std::string tokenizer();

 private:
  TempDir dir_;
};

// A fixture whose suite shares one AdapterModels: a derived fixture's SetUpTestSuite calls
// write_models with its adapters (and may add more files); the tests skip where ../shared has no
// T5 tokenizer.
class AdapterModelsTest : public ::testing::Test {
 protected:
  // Writes the model and an adapter of each of `methods` (AdapterModels::write); nothing where the
  // tokenizer is absent. A failure fails the suite. Returns whether they were written.
  static bool write_models(uint64_t seed, const std::vector<std::string>& methods, double noise) {
    if (!shared_exists(kTokenizer)) return false;
    models_ = new AdapterModels();
    const CommandResult r = models_->write(seed, methods, noise);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0;
  }
  static void TearDownTestSuite() {
    delete models_;
    models_ = nullptr;
  }
  void SetUp() override {
    REQUIRE_SHARED(kTokenizer);
    ASSERT_NE(models_, nullptr) << "the suite's models were not written";
  }
  static std::string model_dir() { return models_->model_dir(); }
  static std::string adapter_dir(const std::string& m) { return models_->adapter_dir(m); }
  static std::string tokenizer() { return AdapterModels::tokenizer(); }
  static const TempDir& models_dir() { return models_->dir(); }

 private:
  static constexpr const char* kTokenizer = "data/t5-tokenizer/spiece.model";
  inline static AdapterModels* models_ = nullptr;
};

// Greedy decoding with T5's ids (eos 1, pad 0, decoder start 0), at most `max_new_tokens`.
decoding::GenerationConfig t5_generation(int64_t max_new_tokens);

// The T5 in `model_dir` with its vocabulary cut to the tokenizer's 32,100 ids (as serve cuts
// it), the adapter in `adapter_dir` attached with peft::load_adapter ("" : none), in eval mode.
nn::T5Model load_with_adapter(const std::string& model_dir, const std::string& adapter_dir);

// The sequences decoding::generate gives `text` decoded alone (one row, a full mask) by `model`.
std::vector<decoding::Sequence> decode_alone(nn::T5ModelImpl& model, const T5Tokenizer& tokenizer,
                                             const std::string& text,
                                             const decoding::GenerationConfig& settings);

}  // namespace compacter::testing

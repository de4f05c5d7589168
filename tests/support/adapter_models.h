// What the serving tests (tests/serve: continuous batching, mixed batches, the HTTP server)
// share: a tiny T5 with T5's vocabulary and adapters with moved tensors in one temporary folder,
// the settings they decode with, and the independent reference they compare with: a fresh model
// with the adapter attached the ordinary way (nn::load_t5 + peft::load_adapter) decoding one
// input alone with decoding::generate (no serving code).
#pragma once
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

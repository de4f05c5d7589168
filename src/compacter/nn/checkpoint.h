// Loading and saving Hugging Face T5 directories (config.json + model.safetensors or shards),
// checking every tensor of the name table (io/hf_names.h) for presence and shape.
#pragma once
#include <torch/types.h>

#include <optional>
#include <string>
#include <vector>

#include "compacter/nn/t5.h"

namespace compacter::nn {

struct T5LoadOptions {
  int64_t vocab_rows = -1;  // > 0: resize the vocabulary after loading (the paper: 32100)
  torch::ScalarType dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;
};

struct T5Loaded {
  T5Model model{nullptr};
  std::vector<std::string> unexpected;  // checkpoint tensors that are not part of T5
};

// Throws Error naming the file and tensor for a missing tensor, a wrong shape or dtype; naming
// config.json for a model_type other than t5, mt5 and umt5 (absent: t5), and for a checkpoint
// with UMT5's per-layer position biases whose config does not say umt5.
T5Loaded load_t5(const std::string& dir, const T5LoadOptions& options = {});

// Writes config.json and model.safetensors (base tensors only, HF names, tied ones once) into
// `dir` (created if needed), each file atomically. Floating tensors are written as float_dtype.
// With `checksum`, model.safetensors carries the checksum of its data that loading verifies
// (safetensors::kDataChecksumKey); without, its metadata is {"format": "pt"} as transformers
// writes it.
void save_t5(T5ModelImpl& model, const std::string& dir,
             torch::ScalarType float_dtype = torch::kFloat32, bool checksum = true);

// Parses "cpu" / "cuda" / "cuda:1" (throws when CUDA is asked for but unavailable) and
// "fp32" / "bf16" (UsageError for other names).
torch::Device parse_device(const std::string& name);
torch::ScalarType parse_dtype(const std::string& name);

// --dtype of every command: fp32, bf16 (every tensor bf16), autocast-bf16 (fp32 weights and
// optimizer state, bf16 matrix products: nn/autocast.h) or int8 (inference only: fp32 weights,
// the backbone's linear layers quantised to int8 once loaded: nn/int8_linear.h).
struct Precision {
  torch::ScalarType weights = torch::kFloat32;
  bool autocast = false;
  bool int8 = false;
  torch::ScalarType products() const { return autocast ? torch::kBFloat16 : weights; }
};
Precision parse_precision(const std::string& name);

}  // namespace compacter::nn

// The identity of a base model's weights, recorded with every adapter trained on it and checked
// when the adapter is loaded (an adapter on the wrong checkpoint of the same shape gives
// confident nonsense). Computed from the loaded tensors, not from the files, so the same weights
// give the same fingerprint whatever they were stored in (safetensors, shards, .bin), in fp32 or
// bf16, and whether the vocabulary was cut to the tokenizer or not:
//   for every tensor of the HF name table (io/hf_names.h), in its order: its name, its shape
//   (the vocabulary tensors without their row count), and 64 evenly spaced values of its
//   flattened data (the vocabulary tensors: of their first 256 rows), each rounded to bfloat16,
//   hashed with FNV-1a 64 (core/fingerprint.h).
// Two checkpoints that differ anywhere a fine-tuning run or another pretraining run reaches
// (every weight) get different fingerprints; computing it reads ~13,000 values for t5-base.
#pragma once
#include <string>

#include "compacter/nn/t5.h"

namespace compacter::nn {

constexpr const char* kWeightsFingerprintScheme = "sampled-bf16-fnv1a64-v1";

std::string weights_fingerprint(T5ModelImpl& model);

}  // namespace compacter::nn

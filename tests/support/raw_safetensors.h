// Minimal, independent readers for test oracles: a safetensors file (F32 / I64 tensors only) and
// the JSON form of the tiny-t5 reference outputs. Kept apart from the project's own reader so
// that tests of that reader (and of the model) do not trust the code under test.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>

namespace compacter::testing {

// Reads every tensor of a .safetensors file: u64 little-endian header length, JSON header
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the raw
// little-endian data. F32 -> kFloat, I64 -> kLong; any other dtype throws std::runtime_error.
std::map<std::string, torch::Tensor> raw_load_safetensors(const std::string& path);

// Reads {"tensors": {name: {"shape": [...], "values": [...flat...]}}} (e.g.
// data/tiny-t5/reference.json). input_ids, attention_mask, decoder_input_ids and labels become
// int64 tensors, everything else float32 (shape [] is a scalar).
std::map<std::string, torch::Tensor> raw_load_reference_json(const std::string& path);

}  // namespace compacter::testing

// The index of a sharded Hugging Face checkpoint (model.safetensors.index.json or
// pytorch_model.bin.index.json): {"metadata": {...}, "weight_map": {tensor: shard file}}.
// Shared by the safetensors and the pytorch_model.bin readers.
#pragma once
#include <map>
#include <string>

namespace compacter {

// Reads and checks an index file: valid JSON, an object with an object "weight_map" of at least
// one tensor, each mapped to a shard file name (a string) that stays inside the checkpoint's
// folder, no tensor listed twice. Returns tensor -> shard name, as listed.
std::map<std::string, std::string> read_weight_map(const std::string& index_path);

}  // namespace compacter

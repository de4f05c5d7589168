// What `compacter inspect` reports about a weights file (safetensors or pytorch_model.bin) or a
// model directory, from the headers (or the .bin's pickle) only: each file's tensor count and
// metadata, every tensor's name, dtype, shape and element count, the parameter count with tied
// embeddings counted once (encoder/decoder embed_tokens, and lm_head when tie_word_embeddings,
// stored as copies of shared.weight are aliases, not parameters), and the T5 config when
// config.json sits next to the weights.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

namespace compacter {

// {"path", "format", "files": [{"path", "tensors", "metadata"}], "tensors": [{"name", "dtype",
// "shape",
//  "numel"}], "num_tensors", "parameters", "aliases_not_counted", ["config_path", "config"]}.
nlohmann::ordered_json inspect_checkpoint(const std::string& path);

}  // namespace compacter

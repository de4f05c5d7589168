// `compacter convert`: a Hugging Face folder with PyTorch weights (pytorch_model.bin or its
// shards) rewritten as model.safetensors, with the folder's configuration and tokenizer files
// copied. Tensors that are the same view of the same storage (T5's tied embeddings: shared,
// encoder/decoder.embed_tokens, lm_head) are written once, under the name that comes first in
// the file (safetensors cannot alias; transformers ties them again on load, as we do).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace compacter {

struct ConvertReport {
  size_t tensors = 0;                // written to model.safetensors
  uint64_t bytes = 0;                // of tensor data written
  std::vector<std::string> aliases;  // "name = kept name", not written
  std::vector<std::string> copied;   // other files copied (config.json, tokenizer, ...)
};

// Writes `out_dir` (which must not exist, or be an empty folder) atomically: everything goes to
// a temporary sibling folder first, which is renamed to out_dir only when complete, so nothing
// is left on failure.
ConvertReport convert_to_safetensors(const std::string& model_dir, const std::string& out_dir);

}  // namespace compacter

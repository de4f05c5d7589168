// `compacter convert`: a Hugging Face folder with PyTorch weights (pytorch_model.bin or its
// shards) rewritten as model.safetensors, with the folder's configuration and tokenizer files
// copied. Tensors that are the same view of the same storage (T5's tied embeddings: shared,
// encoder/decoder.embed_tokens, lm_head) are written once (safetensors cannot alias;
// transformers ties them again on load, as we do), under the group's first name that is not a
// tied copy, i.e. shared.weight, as transformers' save_pretrained(safe_serialization=True) keeps
// it. A tied copy stored on its own (a sharded .bin writes lm_head.weight into another shard than
// shared.weight) is dropped the same way when it equals shared.weight bit for bit; lm_head.weight
// counts as a tied copy only when config.json's tie_word_embeddings is true (the default). The
// output of a single file and of its shards is then the same file.
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

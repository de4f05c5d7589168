// `compacter merge`: an adapter folded into its base model, written as a plain Hugging Face T5
// folder (config.json, model.safetensors with HF names, the base's tokenizer files copied), which
// any T5 loader (ours or transformers) reads without knowing the method. Only methods whose
// tensors are a change of T5's own weights can be merged (MethodInfo::merge: full, lora, ia3).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace compacter::peft {

struct MergeReport {
  std::string method;
  int64_t vocab_rows = 0;                 // rows of the written embedding (the adapter's base)
  std::vector<std::string> copied_files;  // tokenizer files copied from the base folder
};

// Loads base_dir (resized to the vocabulary the adapter was trained on, which may only cut it),
// attaches adapter_dir, merges and writes out_dir (created; each file atomically). Refuses an
// unmergeable method before reading any weights, out_dir = base_dir, and an existing
// out_dir/model.safetensors unless `overwrite`.
MergeReport merge_adapter(const std::string& base_dir, const std::string& adapter_dir,
                          const std::string& out_dir, bool overwrite);

}  // namespace compacter::peft

// `compacter export --to hf`: an adapter of a method whose tensors change T5's own weights (full,
// lora, ia3: MethodInfo::merge) folded into its base and written as a Hugging Face T5 folder that
// transformers' T5ForConditionalGeneration.from_pretrained and AutoTokenizer load as they are:
//   config.json              the base's shape (t5_config_to_json) with vocab_size = the rows the
//                            adapter was trained on (32,100 for T5 with its tokenizer: the
//                            embedding is written with those rows, so config and weights agree
//                            and the logits are ours; transformers sizes the model from
//                            vocab_size and refuses a checkpoint whose rows differ)
//   model.safetensors        every T5 tensor under Hugging Face's name (io/hf_names.h), F32,
//                            metadata {"format": "pt"}; the tied names (encoder/decoder
//                            .embed_tokens, and lm_head when tie_word_embeddings) are not stored,
//                            as transformers writes them; an untied lm_head.weight is
//   generation_config.json   the base's, else transformers' from-model-config one
//   spiece.model, ...        the tokenizer: --tokenizer FILE, else the base folder's spiece.model,
//                            tokenizer.json, tokenizer_config.json, special_tokens_map.json
// docs/interop.md describes the folder.
#pragma once
#include <string>

#include "compacter/interop/source.h"

namespace compacter::interop {

struct HfExportOptions {
  std::string source;     // an adapter folder or a run (source.h)
  std::string model;      // the base model folder ("" : the run's)
  std::string tokenizer;  // a spiece.model to write ("" : the base folder's files)
  std::string out;
  bool overwrite = false;
};

InteropReport export_hf(const HfExportOptions& options);

}  // namespace compacter::interop

// Hugging Face PEFT's adapter folders, out (`compacter export --to peft`) and in (`compacter
// import --from peft`), for the methods both libraries have: LoRA, (IA)^3 and prompt tuning.
//   adapter_config.json        PEFT's config (LoraConfig / IA3Config / PromptTuningConfig fields,
//                              "peft_type", "task_type": "SEQ_2_SEQ_LM", ...)
//   adapter_model.safetensors  PEFT's names: "base_model.model." + the module path + the tensor,
//                              without the adapter name (lora_A.weight, not lora_A.default.weight;
//                              ia3_l), or "prompt_embeddings"; metadata {"format": "pt"}
// (adapter_model.bin, torch.save's format, is read too.) Read from PEFT's source (peft_model.py,
// tuners/lora, tuners/ia3, tuners/prompt_tuning, utils/save_and_load.py):
//   LoRA  y = W x + (lora_alpha / r) B A x, as ours (peft/lora.h); use_rslora's
//         lora_alpha / sqrt(r) is imported as our lora_alpha = lora_alpha sqrt(r). DoRA,
//         per-layer rank_pattern / alpha_pattern, layers_to_transform,
//         modules_to_save, fan_in_fan_out and the inits that rewrite the base weights (pissa,
//         olora, loftq, corda) have no counterpart here and are refused by name.
//   IA3   ia3_l [out, 1] scales a layer's output, or [1, in] its input for feedforward_modules;
//         ours scales k, v, wi_1 outputs and wo's input (peft/ia3.h): any other split is refused.
//   prompt tuning  for SEQ_2_SEQ_LM PEFT prepends rows 0 .. num_virtual_tokens-1 of
//         prompt_embeddings to the encoder's input embeddings with ones in the attention mask, in
//         forward and generate alike, as ours does (peft/prompt.h). Its default
//         num_transformer_submodules = 2 stores a second block of rows for the decoder that
//         prompt tuning never reads (only prefix tuning and p-tuning do): importing drops it;
//         exporting writes num_transformer_submodules = 1.
// Our LoRA / (IA)^3 / prompt adapters that also train T5's layer norms or the output layer have
// no PEFT form (PEFT would need whole modules_to_save copies) and are refused.
// docs/interop.md lists every key written and read.
#pragma once
#include <string>

#include "compacter/interop/source.h"

namespace compacter::interop {

constexpr const char* kPeftKeyPrefix = "base_model.model.";

struct PeftExportOptions {
  std::string source;  // an adapter folder or a run (source.h)
  std::string model;   // written as base_model_name_or_path ("" : the adapter's recorded name)
  std::string out;
  bool overwrite = false;
};

InteropReport export_peft(const PeftExportOptions& options);

// Writes our adapter folder (docs/adapter-format.md) for the PEFT adapter in options.dir.
InteropReport import_peft(const ImportOptions& options);

}  // namespace compacter::interop

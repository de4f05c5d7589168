// Fuzz target for PEFT's adapter_config.json as `compacter import --from peft` reads it
// (interop/import_config.h, peft_import_config_from_text): the text is parsed into the settings
// the importer then applies to the tensors and the base model (peft_type, LoRA's r, lora_alpha,
// use_rslora, lora_dropout and the refused options; (IA)^3's feedforward_modules, a list or a
// regular expression; prompt tuning's num_virtual_tokens, num_transformer_submodules, token_dim).
// Torch-free. An accepted config's feedforward_modules is also matched against every linear
// layer path of a 2-block T5, as the importer matches it.
// Beyond "accepted or compacter::Error": the method agrees with peft_type; LoRA's r is positive,
// lora_alpha finite and lora_dropout in [0, 1); a prompt has 1..kMaxPeftVirtualTokens rows in 1
// or 2 blocks (so the rows it expects, their product, cannot overflow).
#include <cmath>
#include <string>

#include "compacter/core/error.h"
#include "compacter/interop/import_config.h"
#include "fuzz_target.h"

namespace {

using namespace compacter;

void check_invariants(const interop::PeftImportConfig& c) {
  if (c.peft_type == "LORA") {
    if (c.method != "lora" || c.rank <= 0 || !std::isfinite(c.lora_alpha) ||
        !(c.lora_dropout >= 0.0 && c.lora_dropout < 1.0))
      __builtin_trap();
  } else if (c.peft_type == "IA3") {
    if (c.method != "ia3") __builtin_trap();
    for (const char* model_type : {"t5", "mt5"})
      for (const char* stack : {"encoder", "decoder"})
        for (int block = 0; block < 2; ++block)
          for (const char* layer :
               {"layer.0.SelfAttention.q", "layer.0.SelfAttention.k", "layer.0.SelfAttention.v",
                "layer.0.SelfAttention.o", "layer.1.EncDecAttention.k", "layer.1.DenseReluDense.wi",
                "layer.1.DenseReluDense.wi_0", "layer.1.DenseReluDense.wi_1",
                "layer.1.DenseReluDense.wo", "layer.2.DenseReluDense.wo"})
            c.feedforward(cat(stack, ".block.", block, ".", layer), model_type);
  } else if (c.peft_type == "PROMPT_TUNING") {
    if ((c.method != "prompt-r" && c.method != "prompt-t") || c.num_virtual_tokens < 1 ||
        c.num_virtual_tokens > interop::kMaxPeftVirtualTokens ||
        (c.transformer_submodules != 1 && c.transformer_submodules != 2))
      __builtin_trap();
  } else {
    __builtin_trap();
  }
}

}  // namespace

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  return compacter_fuzz_accepted_unless_error([&] {
    const std::string text(reinterpret_cast<const char*>(data), size);
    check_invariants(interop::peft_import_config_from_text(text, "peft/adapter_config.json"));
  });
}

COMPACTER_FUZZ_ENTRY_POINT

// A base model and its tokenizer, loaded the same way by every command that runs a T5: the model
// folder is checked first (so a wrong --model is reported as such, not as a missing tokenizer),
// then the tokenizer (the given spiece.model, the byte-level one, or the folder's), which must
// not be larger than the model's vocabulary, then the weights in the chosen dtype and device; the
// vocabulary is cut to the tokenizer's size as the paper does (32,128 -> 32,100 rows, spec §7.1)
// unless vocab_rows chose one.
#pragma once
#include <string>
#include <vector>

#include "compacter/core/progress.h"
#include "compacter/data/tokenizer.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/nn/int8_linear.h"
#include "compacter/nn/t5.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/train/decoding/generation_config.h"

namespace compacter::train {

struct ModelSpec {
  std::string dir;        // a Hugging Face T5 folder
  std::string tokenizer;  // spiece.model, or "byte" (ByT5); empty: the folder's (load_tokenizer)
  std::string device = "cpu";
  std::string dtype = "fp32";  // fp32 | bf16 | autocast-bf16 | int8 (nn::parse_precision)
  int64_t vocab_rows = -1;     // > 0: resize the vocabulary to this many rows instead
  std::string int8_keep_fp32 = nn::kInt8KeepFp32Default;  // int8: layers left fp32
};

struct BaseModel {
  nn::T5Model model{nullptr};
  T5Tokenizer tokenizer;
  nn::Precision precision;
  nn::Int8Keep int8_keep;  // precision.int8: the layers left fp32
  torch::Device device = torch::kCPU;
  peft::BaseIdentity identity;  // recorded with adapters trained on it, checked when one loads
  // transformers' GenerationConfig defaults with the model's ids, then the folder's
  // generation_config.json when it has one (decoding/generation_config.h).
  decoding::GenerationConfig generation;
};

// The options that check an adapter against `base` (peft::load_adapter), warnings to `progress`.
peft::AdapterLoadOptions adapter_checks(const BaseModel& base, bool allow_base_mismatch,
                                        ProgressSink& progress);

// The file a spec's tokenizer comes from (checks that the model folder exists first): the
// spiece.model; for a byte-level tokenizer, the JSON file whose tokenizer_class chose it, or ""
// for --tokenizer byte.
std::string tokenizer_file(const ModelSpec& spec);

// The spec's tokenizer. --tokenizer byte: ByT5's byte level; --tokenizer FILE: that spiece.model;
// none: the folder's, chosen as transformers' AutoTokenizer does, by the tokenizer_class of
// DIR/tokenizer_config.json, else of DIR/config.json: ByT5Tokenizer -> byte level;
// T5Tokenizer, MT5Tokenizer (or their Fast forms) or no class -> DIR/spiece.model; any other
// class is refused by name. The number of sentinels is tokenizer_config.json's "extra_ids" when
// given (mT5's folders say 0, UMT5's 300), else 100 (SentencePiece) or 125 (bytes).
T5Tokenizer load_tokenizer(const ModelSpec& spec);

// The --tokenizer value of the commands that have no --model (tokenize, detokenize, data):
// "byte" (ByT5's bytes), a model folder (its tokenizer, chosen as load_tokenizer chooses it:
// bytes for a ByT5 folder, else its spiece.model), or a spiece.model file. Throws Error naming
// the argument when it is none of these.
T5Tokenizer tokenizer_from_argument(const std::string& arg);

// Throws Error naming both sizes and both files when `tokenizer` has more ids than the model has
// embedding rows (`rows`; `model_config` is the config.json they come from).
void check_tokenizer_fits(const T5Tokenizer& tokenizer, int64_t rows,
                          const std::string& model_config, bool rows_from_resize = false);

// Loads the model (in eval mode), its tokenizer and its decoding settings, and computes its
// identity (the name from config.json's "_name_or_path" or the folder's name,
// nn::weights_fingerprint, the tokenizer's fingerprint: its file's, or "byte-level-<extra ids>").
// Checkpoint tensors that are not part of T5 are reported to `progress` as a warning.
BaseModel load_base_model(const ModelSpec& spec, ProgressSink& progress = no_progress());

// base.precision.int8: quantises `model` (the base, or a model made from it with its adapter
// attached, final) for inference with base.int8_keep, frees the quantised layers' fp32 weights
// and hands their pages back to the system (nn::quantize_linears_int8, release_free_memory).
// Does nothing otherwise.
void quantize_if_int8(const BaseModel& base, nn::T5ModelImpl& model);

// A model without its tokenizer, for the commands that look at a checkpoint itself (forward):
// the vocabulary as stored, or the rows recorded by the adapter in `adapter_dir` when one is given
// (an adapter trained on a 32,128-row T5 cut to the tokenizer's 32,100 rows), or
// spec.vocab_rows when set. The identity has no tokenizer fingerprint.
struct BaseWeights {
  nn::T5Model model{nullptr};
  peft::BaseIdentity identity;
};
BaseWeights load_base_weights(const ModelSpec& spec, const std::string& adapter_dir = "",
                              ProgressSink& progress = no_progress());

}  // namespace compacter::train

// What `compacter pretrain` does, as a library call: pretraining a T5 from scratch on plain-text
// files with T5's span-corruption objective (pretrain/span_corruption.h; optionally mixed with
// prefix LM), training a SentencePiece vocabulary first when none is given, optionally starting
// the embedding table from PPMI word vectors (pretrain/embeddings.h). The training loop is
// run_training (every parameter trainable, no evaluator), with its checkpoints and --resume, and
// its data parallelism: every rank corrupts the same chunks from the seed and trains on its
// share of each global batch.
//
// The output folder is a Hugging Face T5 directory (config.json, model.safetensors, spiece.model
// or, for ByT5's bytes, tokenizer_config.json)
// plus pretrain_config.json (the effective settings), metrics.jsonl and pretrain_results.json
// (written last: its presence marks the pretraining finished).
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "compacter/core/progress.h"
#include "compacter/data/sentencepiece.h"
#include "compacter/dist/environment.h"
#include "compacter/dist/gradient_sync.h"
#include "compacter/train/options.h"
#include "compacter/train/run_directory.h"

namespace compacter::train {

struct PretrainConfig {
  std::vector<std::string> text_files;  // one document per line
  std::string out;
  RunMode mode = RunMode::kNew;
  // An existing spiece.model; a model folder (its tokenizer, as load_tokenizer chooses it; a
  // SentencePiece one must have T5's 100 sentinels); "byte": ByT5's bytes (the folder gets a
  // tokenizer_config.json naming ByT5Tokenizer, no spiece.model); empty: train one.
  std::string tokenizer;
  SentencePieceTrainOptions spm;
  std::string model_config = "t5-small";  // a built-in name, a config.json or a folder
  // Shape overrides of model_config (-1 / empty: keep its value).
  int64_t d_model = -1, d_kv = -1, d_ff = -1, num_layers = -1, num_decoder_layers = -1,
          num_heads = -1;
  double dropout_rate = -1.0;
  std::string feed_forward_proj;  // relu (v1.0, tied output layer) | gated-gelu (v1.1, untied)
  int64_t input_length = 128;
  double noise_density = 0.15;
  double mean_noise_span_length = 3.0;
  double prefix_lm_fraction = 0.0;
  std::string init_embeddings = "random";  // random | ppmi
  int64_t ppmi_window = 5;
  std::string device = "cpu";
  std::string dtype = "fp32";  // fp32 | autocast-bf16 (sets training.bf16_autocast)
  TrainOptions training = pretraining_defaults();
  // Data parallelism (README "Data-parallel training"), as `train` has it: this process's rank;
  // rank 0 alone writes the folder and sends the vocabulary to the others.
  dist::DistEnv distributed;
  double collective_timeout_seconds = 300.0;  // a rank silent this long stops the others
  dist::GradientSyncOptions gradient_sync;    // buckets and overlap of the gradients' all-reduce

  // The loop's fine-tuning defaults do not fit training from scratch.
  static TrainOptions pretraining_defaults();
};

// Pretrains and writes the folder; returns pretrain_results.json's content.
nlohmann::json run_pretraining(const PretrainConfig& config,
                               ProgressSink& progress = no_progress());

}  // namespace compacter::train

// `compacter pretrain` (issue #6): options and one library call, train::run_pretraining
// (train/pretraining.h): pretrains a T5 from scratch on plain-text files with T5's span
// corruption and writes a Hugging Face T5 folder (config.json, model.safetensors, spiece.model, or
// tokenizer_config.json for ByT5's bytes). Data-parallel like `train` (data_parallel.h).
#include <iostream>
#include <optional>

#include "commands.h"
#include "compacter/train/pretraining.h"
#include "data_parallel.h"
#include "option_flags.h"
#include "stderr_progress.h"

namespace compacter::cli {

namespace {

struct PretrainCli {
  train::PretrainConfig config;
  DataParallelCli parallel;
  bool resume = false, overwrite = false;
  GivenFlags given;  // the training flags (their values land in config.training directly)
};

void run_pretrain(PretrainCli& o) {
  check_usage(!(o.resume && o.overwrite), "--resume and --overwrite exclude each other");
  o.config.mode = o.resume      ? train::RunMode::kResume
                  : o.overwrite ? train::RunMode::kOverwrite
                                : train::RunMode::kNew;
  const std::optional<dist::DistEnv> rank = rank_environment(o.parallel, "pretrain");
  if (!rank) return;  // --nproc N: the ranks ran
  o.config.distributed = *rank;
  o.config.collective_timeout_seconds = o.parallel.dist_timeout;
  o.config.gradient_sync = o.parallel.gradient_sync();
  StderrProgress stderr_progress;
  RankProgress progress(stderr_progress, rank->rank);
  const nlohmann::json r = train::run_pretraining(o.config, progress);
  if (rank->rank != 0) return;  // rank 0 reports
  std::cout << nlohmann::json({{"model", o.config.out},
                               {"steps", r["steps"]},
                               {"final_train_loss", r["final_train_loss"]},
                               {"parameters", r["parameters"]},
                               {"train_seconds", r["time"]["train_seconds"]}})
                   .dump()
            << "\n";
}

}  // namespace

void add_pretrain_command(CLI::App& app) {
  auto o = std::make_shared<PretrainCli>();
  train::PretrainConfig& c = o->config;
  CLI::App* cmd = app.add_subcommand(
      "pretrain",
      "Pretrain a T5 from scratch on plain-text files (one document per line) with T5's span "
      "corruption; writes a Hugging Face T5 folder (config.json, model.safetensors, "
      "spiece.model)");
  cmd->add_option("--text", c.text_files, "plain-text file, one document per line (repeatable)")
      ->required();
  cmd->add_option("-o,--out", c.out, "output folder (the model; also the run's checkpoints)")
      ->required();
  cmd->add_flag("--resume", o->resume, "continue the unfinished pretraining in --out");
  cmd->add_flag("--overwrite", o->overwrite, "replace a model or pretraining already in --out");
  cmd->add_option("--device", c.device, "cpu, cuda or cuda:N")->capture_default_str();
  add_data_parallel_options(*cmd, o->parallel);
  cmd->add_option("--dtype", c.dtype,
                  "fp32, or autocast-bf16 (fp32 weights and optimizer, bf16 matrix products)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "autocast-bf16"}));

  const std::string vocab = "Vocabulary";
  CLI::Option* tokenizer =
      cmd->add_option(
             "--tokenizer", c.tokenizer,
             "an existing spiece.model, a model folder (its tokenizer), or \"byte\" for ByT5's "
             "UTF-8 bytes (the folder then "
             "gets a tokenizer_config.json naming ByT5Tokenizer; span k is marked by byte "
             "id 258 - k, as ByT5 was pretrained); default: train one on the --text files")
          ->group(vocab);
  cmd->add_option("--vocab-size", c.spm.vocab_size,
                  "pieces of the trained vocabulary (<pad> </s> <unk> included; 100 sentinels "
                  "are added; only when it is trained here, not with --tokenizer)")
      ->group(vocab)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 20))
      ->excludes(tokenizer);
  cmd->add_option("--spm-sample-lines", c.spm.input_sentence_size,
                  "train the vocabulary on a random sample of N lines (0: all)")
      ->group(vocab)
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->excludes(tokenizer);

  const std::string shape = "Model shape (a built-in name or config.json, then overrides)";
  cmd->add_option("--model-config", c.model_config,
                  "t5-small, t5-base, ..., t5-v1_1-small, or a config.json / folder")
      ->group(shape)
      ->capture_default_str();
  cmd->add_option("--d-model", c.d_model, "hidden size")->group(shape);
  cmd->add_option("--d-kv", c.d_kv, "size of one attention head")->group(shape);
  cmd->add_option("--d-ff", c.d_ff, "feed-forward inner size")->group(shape);
  cmd->add_option("--num-layers", c.num_layers, "encoder blocks (and decoder, unless given)")
      ->group(shape);
  cmd->add_option("--num-decoder-layers", c.num_decoder_layers, "decoder blocks")->group(shape);
  cmd->add_option("--num-heads", c.num_heads, "attention heads")->group(shape);
  cmd->add_option("--dropout-rate", c.dropout_rate, "dropout (saved in config.json)")->group(shape);
  cmd->add_option("--feed-forward-proj", c.feed_forward_proj,
                  "relu (T5 v1.0, tied output layer) or gated-gelu (v1.1, untied)")
      ->group(shape);

  const std::string objective = "Objective (T5 span corruption; optionally prefix LM)";
  cmd->add_option("--input-length", c.input_length,
                  "ids of each corrupted input (chunks of raw text are longer; 128 -> 141)")
      ->group(objective)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{1} << 20));
  cmd->add_option("--noise-density", c.noise_density, "share of tokens masked")
      ->group(objective)
      ->capture_default_str()
      ->check(CLI::Range(0.01, 0.99));
  cmd->add_option("--mean-span-length", c.mean_noise_span_length, "mean masked span length")
      ->group(objective)
      ->capture_default_str()
      ->check(CLI::Range(1.0, 100.0));

  cmd->add_option("--prefix-lm-fraction", c.prefix_lm_fraction,
                  "share of examples that are prefix-LM instead (text -> its continuation; "
                  "makes the decoder's first position read the input; the demo uses 0.5)")
      ->group(objective)
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));

  cmd->add_option("--init-embeddings", c.init_embeddings,
                  "start of the embedding table: random (T5's initialisation) or ppmi (word "
                  "vectors from the corpus's co-occurrence counts, then span corruption)")
      ->group(objective)
      ->capture_default_str()
      ->check(CLI::IsMember({"random", "ppmi"}));
  cmd->add_option("--ppmi-window", c.ppmi_window, "ppmi: co-occurrence window in tokens")
      ->group(objective)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{50}));

  // The training settings of `train` (train/options.h, declared once there), less the
  // evaluation ones: pretraining has no validation split.
  add_option_flags(*cmd, c.training, o->given, "Training",
                   {"eval_steps", "eval_batch_size", "bf16_autocast"});
  cmd->callback([o] { run_pretrain(*o); });
}

}  // namespace compacter::cli

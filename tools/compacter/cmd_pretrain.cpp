// `compacter pretrain` (issue #6): pretrains a T5 from scratch on plain-text files with T5's
// span-corruption objective (pretrain/span_corruption.h; density 0.15, mean span 3, sentinels in
// input and target), training a SentencePiece vocabulary first when none is given. The output
// folder is a Hugging Face T5 directory (config.json, model.safetensors, spiece.model) that every
// other command and Hugging Face load, plus pretrain_config.json, metrics.jsonl and
// pretrain_results.json. The training loop is train::run_training (AdamW, linear schedule,
// clipping, checkpoints for --resume, Ctrl-C), with every parameter trainable and no evaluator.
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/data/sentencepiece.h"
#include "compacter/data/tokenizer.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/pretrain/corpus.h"
#include "compacter/pretrain/embeddings.h"
#include "compacter/train/loop.h"

namespace compacter::cli {

namespace {

namespace fs = std::filesystem;

struct PretrainCli {
  std::vector<std::string> text_files;
  std::string out;
  std::string tokenizer;  // empty: train one
  SentencePieceTrainOptions spm;
  std::string model_config = "t5-small";
  // Shape overrides of the base config (-1 / empty: keep the base's).
  int64_t d_model = -1, d_kv = -1, d_ff = -1, num_layers = -1, num_decoder_layers = -1,
          num_heads = -1;
  double dropout_rate = -1.0;
  std::string feed_forward_proj;
  int64_t input_length = 128;
  double noise_density = 0.15;
  double mean_noise_span_length = 3.0;
  double prefix_lm_fraction = 0.0;
  std::string init_embeddings = "random";  // random (T5's) | ppmi (pretrain/embeddings.h)
  int64_t ppmi_window = 5;
  std::string device = "cpu";
  train::TrainOptions t;
  bool resume = false;
  bool overwrite = false;
};

// The files a finished or unfinished pretraining leaves in its folder.
const char* const kRunFiles[] = {
    "pretrain_results.json", "pretrain_config.json", "metrics.jsonl",    "checkpoint",
    "checkpoint.old",        "best_adapter",         "best_adapter.old", "best_adapter.new",
    "model.safetensors",     "config.json",          "spiece.model"};

T5Config model_config(const PretrainCli& o, int64_t vocab_size) {
  T5Config c = resolve_t5_config(o.model_config);
  if (o.d_model > 0) c.d_model = o.d_model;
  if (o.d_kv > 0) c.d_kv = o.d_kv;
  if (o.d_ff > 0) c.d_ff = o.d_ff;
  if (o.num_layers > 0) c.num_layers = c.num_decoder_layers = o.num_layers;
  if (o.num_decoder_layers > 0) c.num_decoder_layers = o.num_decoder_layers;
  if (o.num_heads > 0) c.num_heads = o.num_heads;
  if (o.dropout_rate >= 0) c.dropout_rate = o.dropout_rate;
  if (!o.feed_forward_proj.empty()) {
    c.feed_forward_proj = o.feed_forward_proj;
    c.tie_word_embeddings = !c.is_gated();  // v1.0 ties, v1.1 (gated) does not, as published
  }
  c.vocab_size = vocab_size;
  c.validate();
  return c;
}

int64_t last_train_loss_record(const std::string& metrics_path, double& loss) {
  std::ifstream in(metrics_path);
  std::string line;
  int64_t step = -1;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("type", "") == "train") {
      loss = j.value("loss", 0.0);
      step = j.value("step", int64_t{-1});
    }
  }
  return step;
}

void run_pretrain(PretrainCli& o) {
  check(!o.text_files.empty(), "give at least one --text FILE");
  for (const auto& f : o.text_files) check(fs::is_regular_file(f), "--text: no such file ", f);
  check(o.tokenizer.empty() || fs::is_regular_file(o.tokenizer), "--tokenizer: no such file ",
        o.tokenizer);
  // The folder: never overwrite a finished or unfinished pretraining unless asked.
  const bool finished = fs::exists(o.out + "/pretrain_results.json");
  const bool unfinished =
      fs::exists(o.out + "/checkpoint") || fs::exists(o.out + "/checkpoint.old");
  if (o.resume) {
    check(!finished, o.out, " holds a finished pretraining (pretrain_results.json)");
    check(unfinished, "--resume: ", o.out, " holds no checkpoint");
  } else if (finished || unfinished || fs::exists(o.out + "/model.safetensors")) {
    check(o.overwrite, o.out, " already holds ",
          finished     ? "a finished pretraining"
          : unfinished ? "an unfinished pretraining"
                       : "a model",
          ": pass --overwrite to replace it", unfinished && !finished ? " or --resume" : "");
    for (const char* f : kRunFiles) fs::remove_all(o.out + "/" + f);
  }
  fs::create_directories(o.out);
  const std::string spiece = o.out + "/spiece.model";

  // Vocabulary: the given one (copied beside the model), the one a resumed run trained, or a new.
  if (!o.tokenizer.empty()) {
    if (!o.resume || !fs::exists(spiece))
      write_atomically(spiece, [&](const std::string& tmp) {
        fs::copy_file(o.tokenizer, tmp, fs::copy_options::overwrite_existing);
      });
  } else if (!(o.resume && fs::exists(spiece))) {
    std::cerr << "compacter: training a SentencePiece vocabulary of " << o.spm.vocab_size
              << " pieces on " << o.text_files.size() << " file(s) ...\n";
    const int64_t pieces = train_sentencepiece(o.text_files, spiece, o.spm);
    std::cerr << "compacter: wrote " << spiece << " (" << pieces << " pieces + 100 sentinels)\n";
  }
  const auto tok = T5Tokenizer::load(spiece);
  const T5Config config = model_config(o, tok.vocab_size());

  const nlohmann::json effective = {
      {"text_files", o.text_files},
      {"tokenizer", o.tokenizer.empty() ? nlohmann::json("trained") : nlohmann::json(o.tokenizer)},
      {"vocab_pieces", o.tokenizer.empty() ? nlohmann::json(o.spm.vocab_size) : nlohmann::json()},
      {"model_config", t5_config_to_json(config)},
      {"objective",
       {{"input_length", o.input_length},
        {"noise_density", o.noise_density},
        {"mean_noise_span_length", o.mean_noise_span_length},
        {"prefix_lm_fraction", o.prefix_lm_fraction},
        {"init_embeddings", o.init_embeddings},
        {"ppmi_window", o.ppmi_window}}},
      {"training", train::train_options_to_json(o.t)},
      {"device", o.device}};
  if (o.resume) {
    check(read_json_file(o.out + "/pretrain_config.json") == effective,
          "--resume: the settings differ from those the run started with (", o.out,
          "/pretrain_config.json)");
  } else {
    write_text_atomically(o.out + "/pretrain_config.json", effective.dump(2) + "\n");
  }

  // Data: packed chunks, one fresh corruption per epoch (or per pass the step budget needs).
  pretrain::CorpusStats stats;
  const auto chunks = pretrain::pack_text_files(o.text_files, tok, o.input_length, o.noise_density,
                                                o.mean_noise_span_length, stats);
  const int64_t per_step = o.t.batch_size * o.t.gradient_accumulation;
  const int64_t chunk_count = static_cast<int64_t>(chunks.size());
  const int64_t rounds =
      o.t.max_steps > 0 ? (o.t.max_steps * per_step + chunk_count - 1) / chunk_count : o.t.epochs;
  pretrain::SpanCorruption sc;
  sc.noise_density = o.noise_density;
  sc.mean_noise_span_length = o.mean_noise_span_length;
  sc.first_sentinel_id = tok.sentinel_id(0);
  sc.eos_id = tok.eos_id();
  const auto examples =
      pretrain::corrupt_chunks(chunks, sc, rounds, o.t.seed, o.prefix_lm_fraction);
  train::TrainOptions t = o.t;
  t.epochs = 1;  // one pass over `rounds` corruptions of the corpus
  t.eval_steps = 0;
  std::cerr << "compacter: corpus: " << stats.documents << " lines, " << stats.tokens
            << " tokens -> " << stats.chunks << " chunks of " << stats.lengths.tokens_length
            << " tokens (inputs " << stats.lengths.inputs_length << ", targets "
            << stats.lengths.targets_length << " ids); " << rounds << " corruption round(s)\n";

  // Model: Hugging Face's initialisation from the seed, every parameter trainable.
  nn::T5Model model(config, /*initialise=*/false);
  model->init_weights(o.t.seed);
  if (o.init_embeddings == "ppmi" && !o.resume) {
    std::cerr << "compacter: embeddings: PPMI of co-occurrence within " << o.ppmi_window
              << " tokens, randomised SVD to " << config.d_model << " dimensions ...\n";
    const torch::Tensor e = pretrain::ppmi_embeddings(chunks, config.vocab_size, config.d_model,
                                                      o.ppmi_window, o.t.seed);
    torch::NoGradGuard no_grad;
    const torch::Tensor seen = e.abs().sum(1) > 0;
    model->shared->weight.index_put_({seen}, e.index({seen}));
  }
  model->to(nn::parse_device(o.device));
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  std::cerr << "compacter: model: d_model " << config.d_model << ", d_ff " << config.d_ff << ", "
            << config.num_layers << "+" << config.decoder_layers() << " blocks, "
            << config.num_heads << " heads, vocabulary " << config.vocab_size << ": " << parameters
            << " parameters\n";

  train::LoopCallbacks cb;
  cb.save_adapter = [&](const std::string& dir) { nn::save_t5(*model, dir); };
  const train::LoopResult r = train::run_training(*model, examples, t, o.out, o.resume, cb);

  // The Hugging Face folder: config.json and model.safetensors move up beside spiece.model.
  for (const char* f : {"config.json", "model.safetensors"})
    fs::rename(o.out + "/best_adapter/" + f, o.out + "/" + f);
  fs::remove_all(o.out + "/best_adapter");
  double loss = 0.0;
  last_train_loss_record(o.out + "/metrics.jsonl", loss);
  const nlohmann::json results = {
      {"library_version", COMPACTER_VERSION},
      {"steps", r.steps},
      {"final_train_loss", loss},
      {"parameters", parameters},
      {"corpus",
       {{"documents", stats.documents},
        {"tokens", stats.tokens},
        {"chunks", stats.chunks},
        {"corruption_rounds", rounds}}},
      {"time",
       {{"train_seconds", r.train_seconds}, {"examples_per_second", r.examples_per_second}}},
      {"peak_memory_bytes", r.peak_memory_bytes},
      {"config", effective}};
  write_text_atomically(o.out + "/pretrain_results.json", results.dump(2) + "\n");
  std::cout << nlohmann::json({{"model", o.out},
                               {"steps", r.steps},
                               {"final_train_loss", loss},
                               {"parameters", parameters},
                               {"train_seconds", r.train_seconds}})
                   .dump()
            << "\n";
}

}  // namespace

void add_pretrain_command(CLI::App& app) {
  auto o = std::make_shared<PretrainCli>();
  // Pretraining defaults (the loop's fine-tuning defaults do not fit training from scratch).
  o->t.learning_rate = 1e-3;
  o->t.batch_size = 32;
  o->t.epochs = 1;
  o->t.warmup_steps = 100;
  o->t.save_steps = 200;
  o->t.seed = 0;
  CLI::App* cmd = app.add_subcommand(
      "pretrain",
      "Pretrain a T5 from scratch on plain-text files (one document per line) with T5's span "
      "corruption; writes a Hugging Face T5 folder (config.json, model.safetensors, "
      "spiece.model)");
  cmd->add_option("--text", o->text_files, "plain-text file, one document per line (repeatable)")
      ->required();
  cmd->add_option("-o,--out", o->out, "output folder (the model; also the run's checkpoints)")
      ->required();
  cmd->add_flag("--resume", o->resume, "continue the unfinished pretraining in --out");
  cmd->add_flag("--overwrite", o->overwrite, "replace a model or pretraining already in --out");
  cmd->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();

  const std::string vocab = "Vocabulary";
  cmd->add_option("--tokenizer", o->tokenizer,
                  "an existing spiece.model (default: train one on the --text files)")
      ->group(vocab);
  cmd->add_option("--vocab-size", o->spm.vocab_size,
                  "pieces of the trained vocabulary (<pad> </s> <unk> included; 100 sentinels "
                  "are added)")
      ->group(vocab)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 20));
  cmd->add_option("--spm-sample-lines", o->spm.input_sentence_size,
                  "train the vocabulary on a random sample of N lines (0: all)")
      ->group(vocab)
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);

  const std::string shape = "Model shape (a built-in name or config.json, then overrides)";
  cmd->add_option("--model-config", o->model_config,
                  "t5-small, t5-base, ..., t5-v1_1-small, or a config.json / folder")
      ->group(shape)
      ->capture_default_str();
  cmd->add_option("--d-model", o->d_model, "hidden size")->group(shape);
  cmd->add_option("--d-kv", o->d_kv, "size of one attention head")->group(shape);
  cmd->add_option("--d-ff", o->d_ff, "feed-forward inner size")->group(shape);
  cmd->add_option("--num-layers", o->num_layers, "encoder blocks (and decoder, unless given)")
      ->group(shape);
  cmd->add_option("--num-decoder-layers", o->num_decoder_layers, "decoder blocks")->group(shape);
  cmd->add_option("--num-heads", o->num_heads, "attention heads")->group(shape);
  cmd->add_option("--dropout-rate", o->dropout_rate, "dropout (saved in config.json)")
      ->group(shape);
  cmd->add_option("--feed-forward-proj", o->feed_forward_proj,
                  "relu (T5 v1.0, tied output layer) or gated-gelu (v1.1, untied)")
      ->group(shape);

  const std::string objective = "Objective (T5 span corruption; optionally prefix LM)";
  cmd->add_option("--input-length", o->input_length,
                  "ids of each corrupted input (chunks of raw text are longer; 128 -> 141)")
      ->group(objective)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{1} << 20));
  cmd->add_option("--noise-density", o->noise_density, "share of tokens masked")
      ->group(objective)
      ->capture_default_str()
      ->check(CLI::Range(0.01, 0.99));
  cmd->add_option("--mean-span-length", o->mean_noise_span_length, "mean masked span length")
      ->group(objective)
      ->capture_default_str()
      ->check(CLI::Range(1.0, 100.0));

  cmd->add_option("--prefix-lm-fraction", o->prefix_lm_fraction,
                  "share of examples that are prefix-LM instead (text -> its continuation; "
                  "makes the decoder's first position read the input; the demo uses 0.5)")
      ->group(objective)
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));

  cmd->add_option("--init-embeddings", o->init_embeddings,
                  "start of the embedding table: random (T5's initialisation) or ppmi (word "
                  "vectors from the corpus's co-occurrence counts, then span corruption)")
      ->group(objective)
      ->capture_default_str()
      ->check(CLI::IsMember({"random", "ppmi"}));
  cmd->add_option("--ppmi-window", o->ppmi_window, "ppmi: co-occurrence window in tokens")
      ->group(objective)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{50}));

  const std::string training = "Training";
  // The training settings of `train` (train/loop.h, declared once there), less the evaluation
  // ones: pretraining has no validation split.
#define COMPACTER_ADD_PRETRAIN_FLAG(type, name, def, help)                                 \
  if (std::string(#name) != "eval_steps" && std::string(#name) != "eval_batch_size") {     \
    std::string flag = #name;                                                              \
    std::replace(flag.begin(), flag.end(), '_', '-');                                      \
    cmd->add_option("--" + flag, o->t.name, help)->group(training)->capture_default_str(); \
  }
  COMPACTER_TRAIN_OPTIONS(COMPACTER_ADD_PRETRAIN_FLAG)
#undef COMPACTER_ADD_PRETRAIN_FLAG
  cmd->callback([o] { run_pretrain(*o); });
}

}  // namespace compacter::cli

// Pretraining a T5 from text files (issue #6): see pretraining.h.
#include "compacter/train/pretraining.h"

#include <torch/torch.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/core/json_field.h"
#include "compacter/data/tokenizer.h"
#include "compacter/dist/process_group.h"
#include "compacter/io/t5_config.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/pretrain/corpus.h"
#include "compacter/pretrain/embeddings.h"
#include "compacter/train/base_model.h"
#include "compacter/train/loop.h"
#include "compacter/train/metrics_file.h"

namespace compacter::train {

namespace fs = std::filesystem;

namespace {

RunLayout pretraining_layout() {
  RunLayout l;
  l.kind = "pretraining";
  l.results = "pretrain_results.json";
  l.config = "pretrain_config.json";
  l.files = {"pretrain_results.json", "pretrain_config.json", "metrics.jsonl", "checkpoint",
             "checkpoint.old",        "checkpoint.new",       "best_adapter",  "best_adapter.old",
             "best_adapter.new",      "model.safetensors",    "config.json",   "spiece.model",
             "tokenizer_config.json"};
  l.blocking = {"model.safetensors"};
  l.path_settings = {"text_files", "tokenizer"};
  return l;
}

T5Config model_config(const PretrainConfig& o, int64_t vocab_size) {
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

double last_train_loss(const std::string& metrics_path) {
  double loss = 0.0;
  if (!fs::exists(metrics_path)) return loss;
  for (const nlohmann::json& j : read_metrics_file(metrics_path))
    if (field_or(j, "type", "", metrics_path) == "train")  // a NaN loss is written as null
      loss =
          j.contains("loss") && j["loss"].is_null() ? NAN : field_or(j, "loss", 0.0, metrics_path);
  return loss;
}

}  // namespace

TrainOptions PretrainConfig::pretraining_defaults() {
  TrainOptions t;
  t.learning_rate = 1e-3;
  t.batch_size = 32;
  t.epochs = 1;
  t.warmup_steps = 100;
  t.save_steps = 200;
  t.seed = 0;
  return t;
}

nlohmann::json run_pretraining(const PretrainConfig& given, ProgressSink& progress) {
  PretrainConfig o = given;
  const nn::Precision precision = nn::parse_precision(o.dtype);
  check_usage(precision.weights == torch::kFloat32,
              "pretraining keeps fp32 weights: use --dtype fp32 or autocast-bf16");
  if (precision.autocast) o.training.bf16_autocast = true;
  check_usage(!o.text_files.empty(), "give at least one --text FILE");
  for (const auto& f : o.text_files) check(fs::is_regular_file(f), "--text: no such file ", f);
  if (!o.tokenizer.empty() && o.tokenizer != kByteLevelTokenizerName &&
      fs::is_directory(o.tokenizer)) {
    // A model folder: its tokenizer, chosen as every other command chooses it (load_tokenizer).
    ModelSpec spec;
    spec.dir = o.tokenizer;
    const T5Tokenizer chosen = load_tokenizer(spec);
    if (chosen.is_byte_level()) {
      o.tokenizer = kByteLevelTokenizerName;
    } else {
      check(chosen.vocab_size() == chosen.piece_count() + 100, "--tokenizer ", spec.dir,
            ": its tokenizer has ", chosen.vocab_size() - chosen.piece_count(),
            " sentinels (tokenizer_config.json's extra_ids); pretraining uses T5's 100");
      o.tokenizer = tokenizer_file(spec);
    }
  }
  const bool bytes = o.tokenizer == kByteLevelTokenizerName;
  check(o.tokenizer.empty() || bytes || fs::is_regular_file(o.tokenizer),
        "--tokenizer: no such file or folder ", o.tokenizer,
        " (expected a spiece.model, a model folder, or \"", kByteLevelTokenizerName,
        "\" for ByT5's UTF-8 bytes)");
  check_usage(o.init_embeddings == "random" || o.init_embeddings == "ppmi",
              "--init-embeddings must be random or ppmi, got \"", o.init_embeddings, "\"");
  o.training.validate();
  const torch::Device device = nn::parse_device(o.device);
  {  // Every chunk gets the same number of spans: check it against the sentinels first.
    const int64_t sentinels = bytes ? pretrain::kByteSentinelCount : 100;
    const auto lengths =
        pretrain::expanded_lengths(o.input_length, o.noise_density, o.mean_noise_span_length);
    const int64_t spans =
        pretrain::noise_counts(lengths.tokens_length, o.noise_density, o.mean_noise_span_length)
            .noise_spans;
    check_usage(spans <= sentinels, "--input-length ", o.input_length, " with --noise-density ",
                o.noise_density, " and --mean-span-length ", o.mean_noise_span_length, " needs ",
                spans, " sentinels per example; the ",
                bytes ? "byte-level tokenizer has " : "tokenizer has ", sentinels,
                bytes ? " (ByT5 pretrained with --mean-span-length 20)" : "",
                ": use a shorter --input-length or a longer --mean-span-length");
  }
  resolve_t5_config(o.model_config);  // a bad name or file fails before anything is written
  const RunLayout layout = pretraining_layout();
  RunDirectory::check_usable(o.out, layout, o.mode);
  const std::unique_ptr<dist::ProcessGroup> group =
      dist::join_process_group(o.distributed, o.collective_timeout_seconds, o.gradient_sync);
  const bool writer = o.distributed.rank == 0;  // writes the folder; trains the vocabulary

  // Data: packed chunks. With bytes, read before anything is written (a text byte that would
  // look like a sentinel is refused with nothing written); a vocabulary to train comes first.
  pretrain::CorpusStats stats;
  std::vector<std::vector<int64_t>> chunks;
  auto pack = [&](const T5Tokenizer& tokenizer) {
    progress.info(cat("reading and packing ", o.text_files.size(), " file(s) ..."));
    chunks = pretrain::pack_text_files(o.text_files, tokenizer, o.input_length, o.noise_density,
                                       o.mean_noise_span_length, stats);
  };
  const std::string tok_config = o.out + "/tokenizer_config.json";
  if (bytes) pack(T5Tokenizer::byte_level(125, cat("ByT5 bytes, ", tok_config)));

  if (writer && o.mode == RunMode::kOverwrite)
    for (const auto& f : layout.files) fs::remove_all(o.out + "/" + f);
  if (writer) fs::create_directories(o.out);
  const std::string spiece = o.out + "/spiece.model";
  const bool resuming = o.mode == RunMode::kResume;

  // Vocabulary: ByT5's bytes (a tokenizer_config.json naming ByT5Tokenizer, as ByT5 folders
  // have), the given one (copied beside the model), the one a resumed run trained, or a new.
  if (!writer) {
  } else if (bytes) {
    if (!resuming || !fs::exists(tok_config))
      write_text_atomically(
          tok_config,
          nlohmann::json({{"tokenizer_class", "ByT5Tokenizer"}, {"extra_ids", 125}}).dump(2) +
              "\n");
  } else if (!o.tokenizer.empty()) {
    if (!resuming || !fs::exists(spiece))
      write_atomically(spiece, [&](const std::string& tmp) {
        fs::copy_file(o.tokenizer, tmp, fs::copy_options::overwrite_existing);
      });
  } else if (!(resuming && fs::exists(spiece))) {
    progress.info(cat("training a SentencePiece vocabulary of ", o.spm.vocab_size, " pieces on ",
                      o.text_files.size(), " file(s) ..."));
    const int64_t pieces = train_sentencepiece(o.text_files, spiece, o.spm);
    progress.info(cat("wrote ", spiece, " (", pieces, " pieces + 100 sentinels)"));
  }
  // The other ranks get rank 0's spiece.model over the process group (no shared folder needed),
  // once rank 0 has it (training one can take longer than a collective's timeout).
  std::string spiece_copy;  // a rank > 0's private copy
  if (group && !bytes) {
    group->wait_for_all("rank 0 prepares the vocabulary", std::chrono::hours(24 * 7));
    std::string model_bytes;
    if (writer) model_bytes = read_file(spiece);
    group->broadcast_bytes(model_bytes);
    if (!writer) {
      spiece_copy = (fs::temp_directory_path() /
                     cat("compacter-spiece-rank", o.distributed.rank, "-", ::getpid(), ".model"))
                        .string();
      write_atomically(spiece_copy, [&](const std::string& tmp) {
        std::ofstream out(tmp, std::ios::binary);
        out.write(model_bytes.data(), static_cast<std::streamsize>(model_bytes.size()));
        check(static_cast<bool>(out), "cannot write ", tmp);
      });
    }
  }
  const auto tok = bytes ? T5Tokenizer::byte_level(125, cat("ByT5 bytes, ", tok_config))
                         : T5Tokenizer::load(spiece_copy.empty() ? spiece : spiece_copy);
  if (!spiece_copy.empty()) fs::remove(spiece_copy);
  const T5Config config = model_config(o, tok.vocab_size());
  pretrain::SpanCorruption sc;
  sc.noise_density = o.noise_density;
  sc.mean_noise_span_length = o.mean_noise_span_length;
  pretrain::use_sentinels_of(tok, sc);

  const nlohmann::json effective = {
      {"text_files", o.text_files},
      {"tokenizer", o.tokenizer.empty() ? nlohmann::json("trained") : nlohmann::json(o.tokenizer)},
      {"vocab_pieces", o.tokenizer.empty() ? nlohmann::json(o.spm.vocab_size) : nlohmann::json()},
      {"spm_sample_lines", o.spm.input_sentence_size},
      {"model_config", t5_config_to_json(config)},
      {"objective",
       {{"input_length", o.input_length},
        {"noise_density", o.noise_density},
        {"mean_noise_span_length", o.mean_noise_span_length},
        {"prefix_lm_fraction", o.prefix_lm_fraction},
        {"init_embeddings", o.init_embeddings},
        {"ppmi_window", o.ppmi_window}}},
      {"training", train_options_to_json(o.training)},
      {"device", o.device},
      {"threads", torch::get_num_threads()}};
  nlohmann::json recorded = effective;
  if (group) recorded["distributed"] = {{"world_size", group->world_size()}, {"backend", "gloo"}};
  std::optional<RunDirectory> opened;  // rank 0's
  if (writer)
    opened.emplace(
        RunDirectory::open(o.out, layout, resuming ? RunMode::kResume : RunMode::kNew, recorded));

  // One fresh corruption of the chunks per epoch (or per pass the step budget needs).
  if (!bytes) pack(tok);
  const TrainOptions& ot = o.training;
  const int64_t per_step = ot.batch_size * ot.gradient_accumulation;
  const int64_t chunk_count = static_cast<int64_t>(chunks.size());
  const int64_t rounds =
      ot.max_steps > 0 ? (ot.max_steps * per_step + chunk_count - 1) / chunk_count : ot.epochs;
  progress.info(cat("corpus: ", stats.documents, " lines, ", stats.tokens, " tokens -> ",
                    stats.chunks, " chunks of ", stats.lengths.tokens_length, " tokens (inputs ",
                    stats.lengths.inputs_length, ", targets ", stats.lengths.targets_length,
                    " ids); corrupting ", rounds, " round(s) ..."));
  const auto examples = pretrain::corrupt_chunks(chunks, sc, rounds, ot.seed, o.prefix_lm_fraction);
  TrainOptions t = ot;
  t.epochs = 1;  // one pass over `rounds` corruptions of the corpus
  t.eval_steps = 0;

  // Model: Hugging Face's initialisation from the seed, every parameter trainable.
  nn::T5Model model(config, /*initialise=*/false);
  model->init_weights(ot.seed);
  bool from_checkpoint = writer && opened->resuming() && opened->has_checkpoint();
  // The others learn from rank 0 whether to resume.
  if (group) from_checkpoint = group->broadcast_bool(from_checkpoint);
  if (o.init_embeddings == "ppmi" && !from_checkpoint && writer) {  // sent to the others
    progress.info(cat("embeddings: PPMI of co-occurrence within ", o.ppmi_window,
                      " tokens, randomised SVD to ", config.d_model, " dimensions ..."));
    const torch::Tensor e = pretrain::ppmi_embeddings(chunks, config.vocab_size, config.d_model,
                                                      o.ppmi_window, ot.seed);
    torch::NoGradGuard no_grad;
    const torch::Tensor seen = e.abs().sum(1) > 0;
    model->shared->weight.index_put_({seen}, e.index({seen}));
  }
  model->to(device);
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  progress.info(cat("model: d_model ", config.d_model, ", d_ff ", config.d_ff, ", ",
                    config.num_layers, "+", config.decoder_layers(), " blocks, ", config.num_heads,
                    " heads, vocabulary ", config.vocab_size, ": ", parameters,
                    " parameters; training ..."));

  LoopCallbacks cb;
  cb.save_adapter = [&](const std::string& dir) { nn::save_t5(*model, dir); };
  const LoopResult r =
      run_training(*model, examples, t, o.out, from_checkpoint, cb, progress, group.get());
  if (!writer) return {{"rank", o.distributed.rank}};
  const RunDirectory& run = *opened;

  // The Hugging Face folder: config.json and model.safetensors move up beside spiece.model.
  for (const char* f : {"config.json", "model.safetensors"})
    fs::rename(run.file(std::string("best_adapter/") + f), run.file(f));
  fs::remove_all(run.file("best_adapter"));
  const double loss = last_train_loss(run.file("metrics.jsonl"));
  nlohmann::json results = {
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
  if (group) results["distributed"] = distributed_results(r, group->backend());
  write_text_atomically(run.file(layout.results), results.dump(2) + "\n");
  fs::remove_all(run.file("checkpoint"));
  fs::remove_all(run.file("checkpoint.old"));
  return results;
}

}  // namespace compacter::train

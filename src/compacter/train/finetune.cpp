// `train` / `eval` as library calls (spec §4-§6): see finetune.h.
#include "compacter/train/finetune.h"

#include <torch/torch.h>

#include <filesystem>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/core/interrupt.h"
#include "compacter/dist/process_group.h"
#include "compacter/kernels/report.h"
#include "compacter/nn/bf16_linear.h"
#include "compacter/nn/int8_linear.h"
#include "compacter/peft/adapter_card.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "compacter/tasks/inputs.h"
#include "compacter/train/evaluate.h"
#include "compacter/train/loop.h"

namespace compacter::train {

namespace fs = std::filesystem;

namespace {

// The data options with the task prefix decided for `method` (§4.2; "" when no method).
tasks::DataOptions data_options(const DataSpec& d, const std::string& method) {
  tasks::DataOptions o = d.options;
  o.add_prefix =
      !d.no_prefix && (method.empty() || tasks::method_adds_prefix(method, o.fix_quirks));
  return o;
}

tasks::TaskInfo task_info(const DataSpec& d) {
  if (d.task == "user") return tasks::user_task_info(d.options.user);
  return tasks::find_task(d.task);
}

std::vector<tasks::Example> load_examples(const DataSpec& d, const tasks::DataOptions& options,
                                          const std::string& split, ProgressSink& progress) {
  check_usage(!options.data_dir.empty(), "--data-dir is required to load ", d.task, " data");
  int64_t skipped = 0;
  auto examples = tasks::load_split(d.task, split, options, &skipped);
  if (options.skip_invalid)
    progress.info(cat("skipped ", skipped, " invalid row(s) of ", d.task, " ", split));
  return examples;
}

bool labelled(const std::vector<tasks::Example>& examples) {
  for (const auto& e : examples)
    if (e.target.empty() && e.answers.empty()) return false;
  return !examples.empty();
}

std::map<std::string, double> score_examples(const DataSpec& d,
                                             const std::vector<std::string>& predictions,
                                             const std::vector<tasks::Example>& references) {
  if (d.task == "user") return tasks::score_user(d.options.user, predictions, references);
  return tasks::score(d.task, predictions, references);
}

double selection_of(const DataSpec& d, const std::map<std::string, double>& metrics) {
  if (d.task != "user") return tasks::selection_value(d.task, metrics);
  std::vector<double> values;
  for (const auto& [k, x] : metrics) values.push_back(x);
  return tasks::paper_average(values);
}

struct Scored {
  std::map<std::string, double> metrics;
  std::vector<std::string> predictions;
};

// Decoding of `examples` (greedy unless `generation` says otherwise; with `labels`, the most
// probable label instead; a status line every 2 s for long ones), scored when they are labelled.
// stop_on_interrupt: a Ctrl-C stops between batches (a final evaluation, which --resume
// repeats); otherwise the training loop stops after the evaluation, at a checkpoint.
// With a process group every rank calls it and decodes its shard (example i on rank
// i mod world_size, so that long and short examples spread evenly); the predictions are gathered
// and every rank returns all of them, in order, with the metrics.
Scored evaluate_examples(BaseModel& base, const DataSpec& d, const tasks::TaskInfo& info,
                         const std::vector<tasks::Example>& examples, int64_t batch_size,
                         const decoding::GenerationConfig& generation, const std::string& what,
                         bool stop_on_interrupt, ProgressSink& progress,
                         const std::vector<std::string>& labels = {},
                         dist::ProcessGroup* group = nullptr) {
  const size_t world = group ? static_cast<size_t>(group->world_size()) : 1;
  const size_t rank = group ? static_cast<size_t>(group->rank()) : 0;
  std::vector<std::vector<int64_t>> sources;
  for (size_t i = rank; i < examples.size(); i += world)
    sources.push_back(tasks::encode_example(examples[i], info, base.tokenizer, 1).source_ids);
  PeriodicStatus status(progress, what, "examples");
  Scored s;
  const BatchDone on_batch = [&](size_t done, size_t total) {
    if (stop_on_interrupt && interrupt_requested())
      throw Interrupted(cat("interrupted during ", what, " (continue with --resume)"));
    status(done, total);
  };
  std::vector<std::string> mine;
  if (sources.empty()) {
  } else if (labels.empty()) {
    mine = generate_texts(*base.model, base.tokenizer, sources, batch_size, generation,
                          base.precision.autocast, on_batch);
  } else {  // constrained to the task's labels: the most probable one
    for (const auto& dist : classify_sources(*base.model, base.tokenizer, sources, batch_size,
                                             labels, base.precision.autocast, on_batch))
      mine.push_back(labels[static_cast<size_t>(dist.best)]);
  }
  if (!group) {
    s.predictions = std::move(mine);
  } else {
    s.predictions.resize(examples.size());
    const std::vector<std::string> shards = group->all_gather_bytes(nlohmann::json(mine).dump());
    for (size_t r = 0; r < shards.size(); ++r) {
      const auto shard = nlohmann::json::parse(shards[r]).get<std::vector<std::string>>();
      for (size_t k = 0; k < shard.size(); ++k) s.predictions.at(r + k * world) = shard[k];
    }
  }
  if (labelled(examples)) s.metrics = score_examples(d, s.predictions, examples);
  return s;
}

void write_predictions(const std::string& path, const std::vector<tasks::Example>& examples,
                       const std::vector<std::string>& predictions) {
  std::string text;
  for (size_t i = 0; i < examples.size(); ++i)
    text += nlohmann::json{{"id", examples[i].id}, {"prediction", predictions[i]}}.dump() + "\n";
  write_text_atomically(path, text);
}

int64_t max_new_tokens_for(int64_t given, const tasks::TaskInfo& info) {
  check_usage(given == -1 || given >= 1, "max_new_tokens must be at least 1, got ", given);
  return given > 0 ? given : info.generation_max_length - 1;
}

nlohmann::json data_json(const DataSpec& d, const tasks::DataOptions& o) {
  nlohmann::json j = {{"official_splits", !o.paper_splits},
                      {"fix_quirks", o.fix_quirks},
                      {"max_train_samples", o.max_train_samples},
                      {"data_seed", o.data_seed},
                      {"add_prefix", o.add_prefix},
                      {"layout", o.layout == tasks::Layout::kAuto       ? "auto"
                                 : o.layout == tasks::Layout::kOfficial ? "official"
                                                                        : "hf"},
                      {"skip_invalid", o.skip_invalid}};
  if (d.task == "user")
    j["user"] = {{"name", o.user.name},
                 {"format", o.user.format},
                 {"source_fields", o.user.source_fields},
                 {"target_field", o.user.target_field},
                 {"labels", o.user.labels},
                 {"metrics", o.user.metrics},
                 {"id_field", o.user.id_field}};
  return j;
}

}  // namespace

void apply_low_resource_protocol(int64_t max_train_samples, TrainOptions& t) {
  check_usage(max_train_samples > 0,
              "--low-resource needs --max-train-samples N (N = 100, 500, 1000, 2000 or 4000)");
  try {
    t.epochs = tasks::low_resource_epochs_for(max_train_samples);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  t.max_steps = -1;
  t.batch_size = 40;
  t.eval_steps = 250;
  t.save_steps = 250;
}

nlohmann::json finetune_effective_config(const FinetuneConfig& c) {
  const tasks::DataOptions data = data_options(c.data, c.method);
  TrainOptions training = c.training;
  if (nn::parse_precision(c.model.dtype).autocast) training.bf16_autocast = true;
  nlohmann::json j = {
      {"model", c.model.dir},
      {"tokenizer", c.model.tokenizer},
      {"vocab_rows", c.model.vocab_rows},
      {"task", c.data.task},
      {"data_dir", data.data_dir},
      {"method", c.method},
      {"method_options", peft::options_to_json(c.method_options)},
      {"init_seed", c.init_seed.value_or(c.training.seed)},
      {"training", train_options_to_json(training)},
      {"data", data_json(c.data, data)},
      {"max_new_tokens",
       c.max_new_tokens > 0 ? c.max_new_tokens : task_info(c.data).generation_max_length - 1},
      {"device", c.model.device},
      {"dtype", c.model.dtype},
      {"threads", torch::get_num_threads()}};
  // Only when distributed: runs of one process keep the run_config.json they always had.
  if (c.distributed.distributed())
    j["distributed"] = {{"world_size", c.distributed.world_size}, {"backend", "gloo"}};
  return j;
}

nlohmann::json run_finetune(const FinetuneConfig& c, ProgressSink& progress) {
  // Settings and the run directory's state first, then every input: nothing is written until
  // all of them loaded.
  peft::find_method(c.method);
  c.training.validate();
  const tasks::TaskInfo info = task_info(c.data);
  // Training's evaluations decode greedily (the paper's protocol), with the model's ids.
  decoding::GenerationConfig greedy;
  greedy.max_new_tokens = max_new_tokens_for(c.max_new_tokens, info);
  const RunLayout layout = finetune_layout();
  RunDirectory::check_usable(c.out, layout, c.mode);
  const std::unique_ptr<dist::ProcessGroup> group =
      dist::join_process_group(c.distributed, c.collective_timeout_seconds, c.gradient_sync);
  const bool writer = c.distributed.rank == 0;

  const kernels::KernelsReport kernels = kernels::current_kernels(
      torch::get_num_threads(), nn::onednn_bf16_gemm_available(), nn::bf16_onednn_products());
  progress.info(kernels::kernels_line(kernels));
  check_usage(!nn::parse_precision(c.model.dtype).int8, "--dtype int8 is for inference (eval, ",
              "generate, bench --inference): train in fp32 or autocast-bf16");
  BaseModel base = load_base_model(c.model, progress);
  const tasks::DataOptions data = data_options(c.data, c.method);
  auto train_examples = load_examples(c.data, data, "train", progress);
  auto validation = load_examples(c.data, data, "validation", progress);
  auto test = load_examples(c.data, data, "test", progress);
  const int64_t target_len = tasks::target_length(info, base.tokenizer, data.fix_quirks);
  std::vector<tasks::EncodedExample> encoded;
  for (const auto& e : train_examples)
    encoded.push_back(tasks::encode_example(e, info, base.tokenizer, target_len));
  progress.info(cat(c.data.task, ": ", train_examples.size(), " train, ", validation.size(),
                    " validation, ", test.size(), " test examples"));

  TrainOptions t = c.training;
  if (base.precision.autocast) t.bf16_autocast = true;
  const peft::AdapterSpec spec{c.method, c.method_options, c.init_seed.value_or(t.seed)};
  peft::attach(spec.method, spec.options, *base.model, spec.seed);
  const peft::ParameterBreakdown counts = peft::parameter_breakdown(*base.model);
  progress.info(cat("method ", spec.method, ": ", counts.trainable, " trainable parameters (",
                    counts.percent(), "% of ", counts.backbone, ")"));

  const nlohmann::json effective = finetune_effective_config(c);
  // Rank 0 opens (or creates) the run directory; the others learn from it whether to resume.
  std::optional<RunDirectory> opened;
  if (writer) opened.emplace(RunDirectory::open(c.out, layout, c.mode, effective));
  bool from_checkpoint = writer && opened->resuming() && opened->has_checkpoint();
  if (group) from_checkpoint = group->broadcast_bool(from_checkpoint);
  if (writer && opened->resuming() && !from_checkpoint)
    progress.info("no checkpoint was written before the run stopped: starting again from step 0");

  InterruptScope interrupts;  // also covers the final evaluations below
  const nlohmann::json adapter_extra = {
      {"task", c.data.task},
      {"inputs", tasks::input_format_to_json(tasks::input_format(c.data.task, data))},
      {"base", peft::base_identity_to_json(base.identity)},
      {"command", c.command}};
  LoopCallbacks cb;
  cb.save_adapter = [&](const std::string& dir) {
    peft::save_adapter(*base.model, spec, dir, adapter_extra);
  };
  if (labelled(validation)) {
    cb.evaluate_on_every_rank = true;  // each rank decodes its shard (evaluate_examples)
    cb.evaluate = [&] {
      Scored s = evaluate_examples(base, c.data, info, validation, t.eval_batch_size, greedy,
                                   "evaluation", false, progress, {}, group.get());
      Evaluation e;
      e.metrics = s.metrics;
      e.selection = selection_of(c.data, s.metrics);
      return e;
    };
  }
  const LoopResult r =
      run_training(*base.model, encoded, t, c.out, from_checkpoint, cb, progress, group.get());

  // The best adapter, reloaded from its files (by rank 0, which sends it to the others), on
  // validation and test.
  if (writer) peft::load_adapter_tensors(*base.model, opened->file("best_adapter"));
  if (group) {
    std::vector<torch::Tensor> trained;
    for (const auto& [name, p] : peft::trainable_named_parameters(*base.model))
      trained.push_back(p);
    group->broadcast(trained);
  }
  nlohmann::json metrics = nlohmann::json::object();
  for (const auto& [split, examples] :
       std::vector<std::pair<std::string, const std::vector<tasks::Example>*>>{
           {"validation", &validation}, {"test", &test}}) {
    if (examples->empty()) continue;
    progress.info(
        cat("scoring the best adapter on ", split, " (", examples->size(), " examples) ..."));
    Scored s = evaluate_examples(base, c.data, info, *examples, t.eval_batch_size, greedy,
                                 "final " + split + " evaluation", true, progress, {}, group.get());
    if (writer)
      write_predictions(opened->file("predictions_" + split + ".jsonl"), *examples, s.predictions);
    metrics[split] = s.metrics.empty() ? nlohmann::json() : nlohmann::json(s.metrics);
  }
  if (!writer) return {{"rank", c.distributed.rank}};
  const RunDirectory& run = *opened;
  peft::update_adapter_card_scores(run.file("best_adapter"), metrics);
  nlohmann::json results = {
      {"library_version", COMPACTER_VERSION},
      {"task", c.data.task},
      {"method", spec.method},
      {"metrics", metrics},
      {"best_step", r.best_step},
      {"best_validation_selection", r.best_selection},
      {"steps", r.steps},
      {"parameters",
       {{"trainable", counts.trainable},
        {"percent_of_backbone", counts.percent()},
        {"backbone", counts.backbone},
        {"added", counts.added}}},
      {"time",
       {{"train_seconds", r.train_seconds},
        {"evaluation_seconds", r.evaluation_seconds},
        {"total_seconds", r.total_seconds},
        {"epoch_seconds", r.epoch_seconds},
        {"examples_per_second", r.examples_per_second},
        {"note",
         "train_seconds and examples_per_second: training steps only; evaluation_seconds: the "
         "evaluations during training; total_seconds: both"}}},
      {"peak_memory_bytes", r.peak_memory_bytes},
      {"distributed", distributed_results(r, group ? group->backend() : "none")},
      {"adapter_bytes",
       fs::file_size(run.file(std::string("best_adapter/") + peft::kAdapterWeightsFile))},
      {"config", effective},
      {"machine", {{"kernels", kernels::kernels_json(kernels)}}},
      {"evaluations", r.evaluations}};
  write_text_atomically(run.file("results.json"), results.dump(2) + "\n");
  fs::remove_all(run.file("checkpoint"));
  fs::remove_all(run.file("checkpoint.old"));
  return results;
}

EvaluateResult evaluate_adapter(const EvaluateConfig& c, ProgressSink& progress) {
  const auto spec = peft::read_adapter_spec(c.adapter);
  const tasks::TaskInfo info = task_info(c.data);
  decoding::GenerationConfig generation = c.generation;
  generation.max_new_tokens = max_new_tokens_for(c.max_new_tokens, info);
  generation.validate("eval", true);
  check_usage(c.batch_size >= 1, "--batch-size must be at least 1, got ", c.batch_size);
  BaseModel base = load_base_model(c.model, progress);
  const tasks::DataOptions data = data_options(c.data, spec.method);
  const auto examples = load_examples(c.data, data, c.split, progress);
  const nlohmann::json adapter_config = peft::read_adapter_config(c.adapter);
  if (adapter_config.contains("task") && adapter_config["task"].is_string() &&
      adapter_config["task"].get<std::string>() != c.data.task)
    progress.warning(cat("adapter ", c.adapter, " was trained on task ",
                         adapter_config["task"].get<std::string>(), ", not on ", c.data.task,
                         ": its scores here say little"));
  peft::load_adapter(*base.model, c.adapter, adapter_checks(base, c.allow_base_mismatch, progress));
  quantize_if_int8(base, *base.model);
  std::vector<std::string> labels;
  if (c.constrain_labels) {
    labels = tasks::task_labels(info, data.fix_quirks);
    check_usage(!labels.empty(), "--constrain-labels: task ", c.data.task,
                " has no fixed set of labels (its answers are free text)");
  }
  Scored s = evaluate_examples(base, c.data, info, examples, c.batch_size, generation, "evaluation",
                               false, progress, labels);
  check_usage(!s.metrics.empty() || !c.predictions_out.empty(), "the ", c.split, " split of ",
              c.data.task, " has no labels: nothing to score (use --predictions-out)");
  if (!c.predictions_out.empty()) write_predictions(c.predictions_out, examples, s.predictions);
  EvaluateResult r;
  r.examples = examples.size();
  r.metrics = s.metrics;
  r.predictions = std::move(s.predictions);
  return r;
}

}  // namespace compacter::train

// `compacter train`, `compacter eval` and `compacter predict` (issue #5; spec §6): fine-tune a
// method on a task with the paper's protocol, evaluate a saved adapter on a split, and generate
// from text with a base model and an adapter.
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/data/tokenizer.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/tasks/tasks.h"
#include "compacter/train/evaluate.h"
#include "compacter/train/loop.h"
#include "data_options.h"
#include "method_options.h"

namespace compacter::cli {

namespace {

namespace fs = std::filesystem;

struct TrainCli {
  ModelOptions model;
  std::string tokenizer;
  DataCliOptions data;
  MethodOptions method;
  train::TrainOptions values;
  std::vector<std::pair<std::string, CLI::Option*>> given;
  std::string config_file;
  std::string out;
  bool resume = false;
  bool overwrite = false;
  bool low_resource = false;
  int64_t generation_max_length = -1;
};

struct EvalCli {
  ModelOptions model;
  std::string tokenizer;
  DataCliOptions data;
  std::string adapter;
  std::string predictions_out;
  int64_t batch_size = 100;
  int64_t generation_max_length = -1;
};

std::map<std::string, double> score_examples(const DataCliOptions& d,
                                             const std::vector<std::string>& predictions,
                                             const std::vector<tasks::Example>& references) {
  if (d.task == "user") return tasks::score_user(to_data_options(d).user, predictions, references);
  return tasks::score(d.task, predictions, references);
}

bool labelled(const std::vector<tasks::Example>& examples) {
  for (const auto& e : examples)
    if (e.target.empty() && e.answers.empty()) return false;
  return !examples.empty();
}

std::vector<std::vector<int64_t>> encode_sources(const std::vector<tasks::Example>& examples,
                                                 const tasks::TaskInfo& info,
                                                 const T5Tokenizer& tok) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& e : examples) out.push_back(tasks::encode_example(e, info, tok, 1).source_ids);
  return out;
}

struct Scored {
  std::map<std::string, double> metrics;
  std::vector<std::string> predictions;
};

Scored evaluate_split(nn::T5ModelImpl& model, const T5Tokenizer& tok, const DataCliOptions& d,
                      const tasks::TaskInfo& info, const std::vector<tasks::Example>& examples,
                      int64_t batch_size, int64_t max_length) {
  Scored s;
  s.predictions = train::generate_texts(model, tok, encode_sources(examples, info, tok), batch_size,
                                        max_length);
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

void run_train(TrainCli& o) {
  // Settings: defaults < --config < flags.
  nlohmann::json config = nlohmann::json::object();
  if (!o.config_file.empty()) {
    config = read_json_file(o.config_file);
    check(config.is_object(), o.config_file, ": must hold a JSON object");
    for (const auto& item : config.items())
      check(item.key() == "method" || item.key() == "method_options" || item.key() == "training" ||
                item.key() == "description",
            o.config_file, ": unknown key \"", item.key(),
            "\" (expected method, method_options, training, description)");
    if (o.method.method.empty() && config.contains("method"))
      o.method.method = config["method"].get<std::string>();
  }
  check(!o.method.method.empty(), "--method is required (or \"method\" in --config)");
  const peft::PeftOptions peft_options =
      resolve_peft_options(o.method, config.value("method_options", nlohmann::json()));
  train::TrainOptions t;
  if (config.contains("training"))
    train::train_options_from_json(config["training"], o.config_file, t);
  if (o.low_resource) {  // §4.6: the paper's epochs for the train size, batch 40, eval every 250
    check(o.data.max_train_samples > 0,
          "--low-resource needs --max-train-samples N (N = 100, 500, 1000, 2000 or 4000)");
    t.epochs = tasks::low_resource_epochs_for(o.data.max_train_samples);
    t.max_steps = -1;
    t.batch_size = 40;
    t.eval_steps = 250;
    t.save_steps = 250;
  }
#define COMPACTER_APPLY_TRAIN_FLAG(type, name, def, help) \
  for (const auto& [key, opt] : o.given)                  \
    if (key == #name && opt->count() > 0) t.name = o.values.name;
  COMPACTER_TRAIN_OPTIONS(COMPACTER_APPLY_TRAIN_FLAG)
#undef COMPACTER_APPLY_TRAIN_FLAG
  o.data.method = o.method.method;

  // The run directory: never overwrite a finished or unfinished run unless asked.
  const bool finished = fs::exists(o.out + "/results.json");
  const bool unfinished =
      fs::exists(o.out + "/checkpoint") || fs::exists(o.out + "/checkpoint.old");
  if (o.resume) {
    check(!finished, o.out, " holds a finished run (results.json); nothing to resume");
    check(unfinished, "--resume: ", o.out, " holds no checkpoint");
  } else if (finished || unfinished) {
    check(o.overwrite, o.out, " already holds a ", finished ? "finished" : "unfinished",
          " run: pass --overwrite to replace it", finished ? "" : " or --resume to continue it");
    for (const char* f : {"results.json", "metrics.jsonl", "run_config.json", "checkpoint",
                          "checkpoint.old", "best_adapter", "best_adapter.old"})
      fs::remove_all(o.out + "/" + f);
  }
  fs::create_directories(o.out);

  const nlohmann::json effective = {{"model", o.model.model_dir},
                                    {"task", o.data.task},
                                    {"data_dir", o.data.data_dir},
                                    {"method", o.method.method},
                                    {"method_options", peft::options_to_json(peft_options)},
                                    {"training", train::train_options_to_json(t)},
                                    {"data",
                                     {{"official_splits", o.data.official_splits},
                                      {"fix_quirks", o.data.fix_quirks},
                                      {"max_train_samples", o.data.max_train_samples},
                                      {"data_seed", o.data.data_seed}}},
                                    {"device", o.model.device},
                                    {"dtype", o.model.dtype}};
  if (o.resume) {
    const nlohmann::json saved = read_json_file(o.out + "/run_config.json");
    check(saved == effective, "--resume: the settings differ from those the run started with (",
          o.out, "/run_config.json)");
  } else {
    write_text_atomically(o.out + "/run_config.json", effective.dump(2) + "\n");
  }

  // Data.
  const auto tok = T5Tokenizer::load(tokenizer_path(o.tokenizer, o.model.model_dir));
  const tasks::TaskInfo info = task_info(o.data);
  auto train_examples = load_examples(o.data, "train");
  auto validation = load_examples(o.data, "validation");
  auto test = load_examples(o.data, "test");
  const int64_t target_len = tasks::target_length(info, tok, o.data.fix_quirks);
  std::vector<tasks::EncodedExample> encoded;
  for (const auto& e : train_examples)
    encoded.push_back(tasks::encode_example(e, info, tok, target_len));
  const int64_t max_length =
      o.generation_max_length > 0 ? o.generation_max_length : info.generation_max_length;
  std::cerr << "compacter: " << o.data.task << ": " << train_examples.size() << " train, "
            << validation.size() << " validation, " << test.size() << " test examples\n";

  // Model and method.
  nn::T5Model model = load_model(o.model);
  resize_to_tokenizer(*model, o.model, tok);
  peft::AdapterSpec spec{o.method.method, peft_options, t.seed};
  peft::attach(spec.method, spec.options, *model, spec.seed);
  const peft::ParameterBreakdown counts = peft::parameter_breakdown(*model);
  std::cerr << "compacter: method " << spec.method << ": " << counts.trainable
            << " trainable parameters (" << counts.percent() << "% of " << counts.backbone << ")\n";

  const nlohmann::json adapter_extra = {{"task", o.data.task}};
  train::LoopCallbacks cb;
  cb.save_adapter = [&](const std::string& dir) {
    peft::save_adapter(*model, spec, dir, adapter_extra);
  };
  if (labelled(validation)) {
    cb.evaluate = [&] {
      Scored s =
          evaluate_split(*model, tok, o.data, info, validation, t.eval_batch_size, max_length);
      train::Evaluation e;
      e.metrics = s.metrics;
      e.selection = o.data.task == "user" ? tasks::paper_average([&] {
        std::vector<double> v;
        for (const auto& [k, x] : s.metrics) v.push_back(x);
        return v;
      }())
                                          : tasks::selection_value(o.data.task, s.metrics);
      return e;
    };
  }
  const train::LoopResult r = train::run_training(*model, encoded, t, o.out, o.resume, cb);

  // The best adapter, reloaded from its files, on validation and test.
  peft::load_adapter_tensors(*model, o.out + "/best_adapter");
  nlohmann::json metrics = nlohmann::json::object();
  for (const auto& [split, examples] :
       std::vector<std::pair<std::string, const std::vector<tasks::Example>*>>{
           {"validation", &validation}, {"test", &test}}) {
    if (examples->empty()) continue;
    Scored s = evaluate_split(*model, tok, o.data, info, *examples, t.eval_batch_size, max_length);
    write_predictions(o.out + "/predictions_" + split + ".jsonl", *examples, s.predictions);
    metrics[split] = s.metrics.empty() ? nlohmann::json() : nlohmann::json(s.metrics);
  }
  nlohmann::json results = {
      {"library_version", COMPACTER_VERSION},
      {"task", o.data.task},
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
        {"epoch_seconds", r.epoch_seconds},
        {"examples_per_second", r.examples_per_second}}},
      {"peak_memory_bytes", r.peak_memory_bytes},
      {"adapter_bytes", fs::file_size(o.out + "/best_adapter/" + peft::kAdapterWeightsFile)},
      {"config", effective},
      {"evaluations", r.evaluations}};
  write_text_atomically(o.out + "/results.json", results.dump(2) + "\n");
  std::cout << nlohmann::json({{"task", o.data.task},
                               {"method", spec.method},
                               {"metrics", metrics},
                               {"trainable", counts.trainable},
                               {"run_dir", o.out}})
                   .dump()
            << "\n";
}

void run_eval(EvalCli& o) {
  const auto spec = peft::read_adapter_spec(o.adapter);
  o.data.method = spec.method;
  const auto tok = T5Tokenizer::load(tokenizer_path(o.tokenizer, o.model.model_dir));
  const tasks::TaskInfo info = task_info(o.data);
  const auto examples = load_examples(o.data);
  nn::T5Model model = load_model(o.model);
  resize_to_tokenizer(*model, o.model, tok);
  peft::load_adapter(*model, o.adapter);
  const int64_t max_length =
      o.generation_max_length > 0 ? o.generation_max_length : info.generation_max_length;
  Scored s = evaluate_split(*model, tok, o.data, info, examples, o.batch_size, max_length);
  if (!o.predictions_out.empty()) write_predictions(o.predictions_out, examples, s.predictions);
  check(!s.metrics.empty() || !o.predictions_out.empty(), "the ", o.data.split, " split of ",
        o.data.task, " has no labels: nothing to score (use --predictions-out)");
  std::cout << nlohmann::json({{"task", o.data.task},
                               {"split", o.data.split},
                               {"examples", examples.size()},
                               {"metrics", s.metrics}})
                   .dump()
            << "\n";
}

struct PredictCli {
  ModelOptions model;
  std::string tokenizer;
  std::string adapter;
  std::vector<std::string> texts;
  int64_t batch_size = 32;
  int64_t max_length = 20;
  int64_t max_source_length = 512;
};

void run_predict(const PredictCli& o) {
  const auto tok = T5Tokenizer::load(tokenizer_path(o.tokenizer, o.model.model_dir));
  nn::T5Model model = load_model(o.model);
  resize_to_tokenizer(*model, o.model, tok);
  if (!o.adapter.empty()) peft::load_adapter(*model, o.adapter);
  const auto lines = input_lines(o.texts);
  std::vector<std::vector<int64_t>> sources;
  for (const auto& l : lines) sources.push_back(tok.encode(l, o.max_source_length));
  for (const auto& text : train::generate_texts(*model, tok, sources, o.batch_size, o.max_length))
    std::cout << text << "\n";
}

}  // namespace

void add_train_commands(CLI::App& app) {
  auto o = std::make_shared<TrainCli>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Fine-tune a method on a task with the paper's protocol; keeps the best adapter");
  add_model_options(*cmd, o->model);
  cmd->add_option("--tokenizer", o->tokenizer, "spiece.model (default: the model folder's)");
  add_data_options(cmd, o->data, false, false, false);
  add_method_options(*cmd, o->method, false);
  cmd->add_option("--config", o->config_file,
                  "JSON file: {\"method\", \"method_options\": {...}, \"training\": {...}} "
                  "(configs/ has the paper's); flags override it");
  cmd->add_option("-o,--out", o->out, "run directory")->required();
  cmd->add_flag("--resume", o->resume, "continue the unfinished run in --out");
  cmd->add_flag("--overwrite", o->overwrite, "replace a run already in --out");
  cmd->add_flag("--low-resource", o->low_resource,
                "the paper's low-resource protocol (spec §4.6) for --max-train-samples 100, 500, "
                "1000, 2000 or 4000: epochs 1000, 200, 100, 50 or 25, batch 40, evaluation and "
                "checkpoint every 250 steps (over --config; flags still override)");
  cmd->add_option("--generation-max-length", o->generation_max_length,
                  "decoding length incl. the start token (default: the task's, 20 as the paper)");
  const std::string group = "Training (defaults: spec §6; --config and flags override)";
#define COMPACTER_ADD_TRAIN_FLAG(type, name, def, help)                                           \
  {                                                                                               \
    std::string flag = #name;                                                                     \
    std::replace(flag.begin(), flag.end(), '_', '-');                                             \
    o->given.emplace_back(                                                                        \
        #name,                                                                                    \
        cmd->add_option("--" + flag, o->values.name, help)->group(group)->capture_default_str()); \
  }
  COMPACTER_TRAIN_OPTIONS(COMPACTER_ADD_TRAIN_FLAG)
#undef COMPACTER_ADD_TRAIN_FLAG
  cmd->callback([o] { run_train(*o); });

  auto e = std::make_shared<EvalCli>();
  CLI::App* ev = app.add_subcommand("eval", "Score a saved adapter on a split of a task");
  add_model_options(*ev, e->model);
  ev->add_option("--tokenizer", e->tokenizer, "spiece.model (default: the model folder's)");
  ev->add_option("--adapter", e->adapter, "adapter directory")->required();
  add_data_options(ev, e->data, true, true, false);
  ev->add_option("--predictions-out", e->predictions_out,
                 "write {\"id\", \"prediction\"} JSON Lines here");
  ev->add_option("--batch-size", e->batch_size, "examples per generation batch")
      ->capture_default_str();
  ev->add_option("--generation-max-length", e->generation_max_length,
                 "decoding length incl. the start token (default: the task's)");
  ev->callback([e] { run_eval(*e); });

  auto p = std::make_shared<PredictCli>();
  CLI::App* pr = app.add_subcommand(
      "predict", "Generate from text lines (--text or stdin) with a base model and an adapter");
  add_model_options(*pr, p->model);
  pr->add_option("--tokenizer", p->tokenizer, "spiece.model (default: the model folder's)");
  pr->add_option("--adapter", p->adapter, "adapter directory (none: the base model)");
  pr->add_option("--text", p->texts, "input text (repeatable); default: stdin lines");
  pr->add_option("--batch-size", p->batch_size, "lines per batch")->capture_default_str();
  pr->add_option("--max-length", p->max_length, "decoding length incl. the start token")
      ->capture_default_str();
  pr->add_option("--max-source-length", p->max_source_length, "input tokens kept (with </s>)")
      ->capture_default_str();
  pr->callback([p] { run_predict(*p); });
}

}  // namespace compacter::cli

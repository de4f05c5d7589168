// `compacter params`: trainable-parameter counts of a method on a T5 shape, in the layout of the
// paper's Table 1 (spec §7): trainable count, % of the backbone, "#Total params" for T tasks,
// and the split into adapters, shared A, layer norms, biases, prompts and SAID values.
// Needs no weights: the model is built from a built-in or given config.json, with the vocabulary
// cut to the tokenizer's size (32,100 for T5's standard 32,128-row checkpoints, spec §7.1, §9 #16).
#include <torch/torch.h>

#include <iomanip>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "compacter/core/error.h"
#include "compacter/io/t5_config.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "method_options.h"

namespace compacter::cli {

namespace {

struct ParamsOptions {
  std::string model_config = "t5-base";
  MethodOptions method;
  bool all = false;
  int64_t tasks = 8;
  int64_t vocab_rows = -1;
  bool json = false;
};

nlohmann::json row(const std::string& method, const peft::ParameterBreakdown& b, int64_t tasks) {
  return {{"method", method},
          {"trainable", b.trainable},
          {"percent", b.percent()},
          {"backbone", b.backbone},
          {"tasks", tasks},
          {"total_params", b.total_for_tasks(tasks, method == "full")},
          {"added", b.added},
          {"adapters", b.adapters},
          {"adapter_biases", b.adapter_biases},
          {"shared_rule", b.shared_rule},
          {"layer_norms", b.layer_norms},
          {"block_layer_norms", b.block_layer_norms},
          {"biases", b.biases},
          {"prompt", b.prompt},
          {"intrinsic", b.intrinsic},
          {"backbone_trained", b.backbone_trained}};
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

void run_params(const ParamsOptions& o) {
  check_usage(o.all || !o.method.method.empty(), "give --method M or --all");
  check_usage(!(o.all && !o.method.method.empty()), "--all and --method exclude each other");
  check_usage(o.tasks >= 1, "--tasks must be at least 1, got ", o.tasks);
  T5Config c = resolve_t5_config(o.model_config);
  if (o.vocab_rows > 0)
    c.vocab_size = o.vocab_rows;
  else if (c.vocab_size == 32128)
    c.vocab_size = 32100;  // resize_token_embeddings(len(tokenizer)) (spec §7.1)
  std::vector<std::string> methods;
  if (o.all)
    for (const auto& m : peft::all_methods()) methods.push_back(m.name);
  else
    methods.push_back(o.method.method);
  nlohmann::json rows = nlohmann::json::array();
  for (const std::string& name : methods) {
    // Uninitialised storage: counting never reads the values.
    nn::T5Model model(c, false);
    MethodOptions m = o.method;
    m.method = name;
    try {
      peft::attach(name, resolve_peft_options(m), *model, 0);
    } catch (const Error& e) {
      if (!o.all) throw;
      // --all: a method whose defaults do not fit this shape (e.g. PHM's n = 12 with d = 16)
      // gets a row saying why, not a failure of the whole table.
      rows.push_back({{"method", name}, {"error", e.what()}});
      continue;
    }
    rows.push_back(row(name, peft::parameter_breakdown(*model, name), o.tasks));
  }
  if (o.json) {
    nlohmann::json out = {
        {"model_config", o.model_config}, {"vocab_rows", c.vocab_size}, {"methods", rows}};
    std::cout << (o.all ? out : rows[0]).dump(2) << "\n";
    return;
  }
  std::cout << "model " << o.model_config << " (vocabulary " << c.vocab_size << " rows), backbone "
            << rows[0]["backbone"].get<int64_t>() << " parameters; #Total for " << o.tasks
            << " tasks\n";
  std::cout << std::left << std::setw(12) << "method" << std::right << std::setw(13) << "trainable"
            << std::setw(10) << "%" << std::setw(9) << "#Total" << std::setw(12) << "adapters"
            << std::setw(9) << "A" << std::setw(9) << "norms" << std::setw(10) << "biases"
            << std::setw(9) << "prompt" << std::setw(8) << "said"
            << "\n";
  for (const auto& r : rows) {
    if (r.contains("error")) {
      std::cout << std::left << std::setw(12) << r["method"].get<std::string>()
                << " n/a: " << r["error"].get<std::string>() << "\n";
      continue;
    }
    std::cout << std::left << std::setw(12) << r["method"].get<std::string>() << std::right
              << std::setw(13) << r["trainable"].get<int64_t>() << std::setw(10)
              << fixed(r["percent"].get<double>(), 4) << std::setw(9)
              << fixed(r["total_params"].get<double>(), 4) << std::setw(12)
              << r["adapters"].get<int64_t>() << std::setw(9) << r["shared_rule"].get<int64_t>()
              << std::setw(9) << r["layer_norms"].get<int64_t>() << std::setw(10)
              << r["biases"].get<int64_t>() << std::setw(9) << r["prompt"].get<int64_t>()
              << std::setw(8) << r["intrinsic"].get<int64_t>() << "\n";
  }
}

// `compacter methods`: every method's name, what it trains and its settings (the options it
// uses) with their defaults: the paper's (or PEFT's) choices on top of the generic ones.
void run_methods(bool as_json) {
  nlohmann::json out = nlohmann::json::array();
  std::vector<std::string> lines;
  for (const auto& info : peft::all_methods()) {
    nlohmann::json settings = nlohmann::json::object();
    std::ostringstream line;
    for (const auto& [name, value] :
         peft::method_settings(info.name, peft::method_defaults(info.name))) {
      settings[name] = value;
      line << " " << name << "=" << value.dump();
    }
    out.push_back({{"method", info.name}, {"summary", info.summary}, {"settings", settings}});
    lines.push_back(line.str());
  }
  if (as_json) {
    std::cout << out.dump(2) << "\n";
    return;
  }
  for (size_t i = 0; i < out.size(); ++i) {
    std::cout << std::left << std::setw(13) << out[i]["method"].get<std::string>()
              << out[i]["summary"].get<std::string>() << "\n";
    if (lines[i].empty()) continue;
    std::cout << std::string(13, ' ') << "settings:" << lines[i] << "\n";
  }
}

}  // namespace

void add_methods_command(CLI::App& app) {
  auto as_json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "methods", "List the fine-tuning methods with their settings and default values");
  cmd->add_flag("--json", *as_json, "print JSON");
  cmd->callback([as_json] { run_methods(*as_json); });
}

void add_params_command(CLI::App& app) {
  auto o = std::make_shared<ParamsOptions>();
  CLI::App* cmd = app.add_subcommand(
      "params", "Count a method's trainable parameters on a T5 shape (the paper's Table 1)");
  cmd->add_option("--model-config", o->model_config,
                  builtin_t5_config_names() + ", or a folder / config.json")
      ->capture_default_str();
  cmd->add_flag("--all", o->all, "every method, one row each");
  cmd->add_option("--tasks", o->tasks,
                  "tasks sharing the backbone for #Total (8 for GLUE, 6 for SuperGLUE)")
      ->capture_default_str();
  cmd->add_option("--vocab-rows", o->vocab_rows,
                  "vocabulary rows (default: 32100 when the config has T5's 32128)");
  cmd->add_flag("--json", o->json, "print JSON");
  add_method_options(*cmd, o->method, false);
  cmd->callback([o] { run_params(*o); });
}

}  // namespace compacter::cli

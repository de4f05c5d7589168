// `compacter params`: trainable-parameter counts of a method on a T5 shape, in the layout of the
// paper's Table 1 (spec §7; peft/parameter_report.h computes the rows). Needs no weights: the
// model is built from a built-in or given config.json, with the vocabulary cut to the
// tokenizer's size (32,100 for T5's standard 32,128-row checkpoints, spec §7.1, §9 #16).
#include <iostream>

#include "commands.h"
#include "compacter/core/error.h"
#include "compacter/io/t5_config.h"
#include "compacter/peft/parameter_report.h"
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
    MethodOptions m = o.method;
    m.method = name;
    try {
      rows.push_back(peft::parameter_row(c, name, resolve_peft_options(m), o.tasks));
    } catch (const Error& e) {
      if (!o.all) throw;
      // --all: a method whose defaults do not fit this shape (e.g. PHM's n = 12 with d = 16)
      // gets a row saying why, not a failure of the whole table.
      rows.push_back({{"method", name}, {"error", e.what()}});
    }
  }
  if (o.json) {
    nlohmann::json out = {
        {"model_config", o.model_config}, {"vocab_rows", c.vocab_size}, {"methods", rows}};
    std::cout << (o.all ? out : rows[0]).dump(2) << "\n";
    return;
  }
  std::cout << peft::format_parameter_table(o.model_config, c, rows, o.tasks);
}

}  // namespace

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

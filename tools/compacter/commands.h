// The subcommands of the `compacter` program. Each add_*_command registers one subcommand on the
// app; main() lists them all explicitly (no static self-registration).
#pragma once
#include <CLI/CLI.hpp>

namespace compacter::cli {

void add_inspect_command(CLI::App& app);     // cmd_inspect.cpp
void add_tokenize_commands(CLI::App& app);   // cmd_tokenize.cpp: tokenize, detokenize
void add_forward_command(CLI::App& app);     // cmd_forward.cpp
void add_generate_command(CLI::App& app);    // cmd_generate.cpp
void add_init_model_command(CLI::App& app);  // cmd_init_model.cpp
void add_params_command(CLI::App& app);      // cmd_params.cpp
void add_methods_command(CLI::App& app);     // cmd_methods.cpp
void add_train_command(CLI::App& app);       // cmd_train.cpp
void add_eval_command(CLI::App& app);        // cmd_eval.cpp
void add_predict_command(CLI::App& app);     // cmd_predict.cpp
void add_wordnet_command(CLI::App& app);     // cmd_wordnet.cpp
void add_pretrain_command(CLI::App& app);    // cmd_pretrain.cpp
void add_report_command(CLI::App& app);      // cmd_report.cpp
void add_bench_commands(CLI::App& app);      // cmd_bench.cpp: bench (and its hidden worker)
void add_tasks_commands(CLI::App& app);      // cmd_tasks.cpp: tasks, data
void add_score_command(CLI::App& app);       // cmd_score.cpp
void add_serve_command(CLI::App& app);       // cmd_serve.cpp
void add_merge_command(CLI::App& app);       // cmd_merge.cpp
void add_convert_command(CLI::App& app);     // cmd_convert.cpp
void add_interop_commands(CLI::App& app);    // cmd_interop.cpp: export, import

}  // namespace compacter::cli

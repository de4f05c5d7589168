// `compacter methods`: every method's name, what it trains and its settings (the options it
// uses) with their defaults: the paper's (or PEFT's) choices on top of the generic ones
// (peft::methods_json).
#include <iomanip>
#include <iostream>

#include "commands.h"
#include "compacter/peft/methods.h"
#include "compacter/peft/parameter_report.h"

namespace compacter::cli {

namespace {

void run_methods(bool as_json) {
  if (as_json) {
    std::cout << peft::methods_json().dump(2) << "\n";
    return;
  }
  // The text keeps each method's own order of settings (JSON objects sort their keys).
  for (const auto& info : peft::all_methods()) {
    std::cout << std::left << std::setw(13) << info.name << info.summary << "\n";
    const auto settings = peft::method_settings(info.name, peft::method_defaults(info.name));
    if (settings.empty()) continue;
    std::cout << std::string(13, ' ') << "settings:";
    for (const auto& [name, value] : settings) std::cout << " " << name << "=" << value.dump();
    std::cout << "\n";
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

}  // namespace compacter::cli

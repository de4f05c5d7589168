// Table 1's parameter counts: see parameter_report.h.
#include "compacter/peft/parameter_report.h"

#include <iomanip>
#include <sstream>

namespace compacter::peft {

namespace {

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

}  // namespace

nlohmann::json parameter_row(const T5Config& config, const std::string& method,
                             const PeftOptions& options, int64_t tasks) {
  nn::T5Model model(config, /*initialise=*/false);  // uninitialised: counting reads no value
  attach(method, options, *model, 0);
  const ParameterBreakdown b = parameter_breakdown(*model, method);
  return {{"method", method},
          {"trainable", b.trainable},
          {"percent", b.percent()},
          {"backbone", b.backbone},
          {"tasks", tasks},
          // A method that trains the whole backbone stores a whole model per task.
          {"total_params", b.total_for_tasks(tasks, b.added == 0 && b.trainable == b.backbone)},
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

std::string format_parameter_table(const std::string& model_config, const T5Config& config,
                                   const nlohmann::json& rows, int64_t tasks) {
  std::ostringstream out;
  int64_t backbone = 0;
  for (const auto& r : rows)
    if (r.contains("backbone")) backbone = r["backbone"].get<int64_t>();
  out << "model " << model_config << " (vocabulary " << config.vocab_size << " rows), backbone "
      << backbone << " parameters; #Total for " << tasks << " tasks\n";
  out << std::left << std::setw(12) << "method" << std::right << std::setw(13) << "trainable"
      << std::setw(10) << "%" << std::setw(9) << "#Total" << std::setw(12) << "adapters"
      << std::setw(9) << "A" << std::setw(9) << "norms" << std::setw(10) << "biases" << std::setw(9)
      << "prompt" << std::setw(8) << "said"
      << "\n";
  for (const auto& r : rows) {
    if (r.contains("error")) {
      out << std::left << std::setw(12) << r["method"].get<std::string>()
          << " n/a: " << r["error"].get<std::string>() << "\n";
      continue;
    }
    out << std::left << std::setw(12) << r["method"].get<std::string>() << std::right
        << std::setw(13) << r["trainable"].get<int64_t>() << std::setw(10)
        << fixed(r["percent"].get<double>(), 4) << std::setw(9)
        << fixed(r["total_params"].get<double>(), 4) << std::setw(12)
        << r["adapters"].get<int64_t>() << std::setw(9) << r["shared_rule"].get<int64_t>()
        << std::setw(9) << r["layer_norms"].get<int64_t>() << std::setw(10)
        << r["biases"].get<int64_t>() << std::setw(9) << r["prompt"].get<int64_t>() << std::setw(8)
        << r["intrinsic"].get<int64_t>() << "\n";
  }
  return out.str();
}

nlohmann::json methods_json() {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& info : all_methods()) {
    nlohmann::json settings = nlohmann::json::object();
    for (const auto& [name, value] : method_settings(info.name, method_defaults(info.name)))
      settings[name] = value;
    out.push_back({{"method", info.name}, {"summary", info.summary}, {"settings", settings}});
  }
  return out;
}

}  // namespace compacter::peft

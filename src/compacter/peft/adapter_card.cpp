// Adapter cards: see adapter_card.h.
#include "compacter/peft/adapter_card.h"

#include <iomanip>
#include <sstream>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/core/json_field.h"
#include "compacter/io/safetensors.h"
#include "compacter/peft/adapter_file.h"

namespace compacter::peft {

namespace {

std::string text_of(const nlohmann::json& j, const std::string& key, const std::string& missing) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() && !it->get<std::string>().empty()
             ? it->get<std::string>()
             : missing;
}

std::string grouped(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ",";
    out += digits[i];
  }
  return out;
}

std::string scores_line(const nlohmann::json& scores) {
  if (!scores.is_object() || scores.empty()) return "not scored yet";
  std::ostringstream out;
  out << std::fixed << std::setprecision(1);
  bool first = true;
  for (const auto& [split, metrics] : scores.items()) {
    if (!metrics.is_object()) continue;
    for (const auto& [metric, value] : metrics.items()) {
      if (!value.is_number()) continue;
      out << (first ? "" : ", ") << split << " " << metric << " " << value.get<double>();
      first = false;
    }
  }
  return first ? "not scored (no labels)" : out.str();
}

}  // namespace

std::string adapter_card(const nlohmann::json& config, int64_t parameters,
                         const nlohmann::json& scores) {
  const std::string method = text_of(config, "method", "?");
  const nlohmann::json inputs = config.value("inputs", nlohmann::json());
  std::string task = text_of(config, "task", "an unrecorded task");
  if (task == "user" && inputs.is_object() && inputs.contains("user"))  // a user's own task
    task = text_of(inputs["user"], "name", "user") + " (a user task)";
  const nlohmann::json base = config.value("base", nlohmann::json::object());
  const std::string base_name = text_of(base, "name", "an unrecorded base model");
  std::ostringstream out;
  out << "# " << method << " adapter for " << task << ", on " << base_name << "\n\n";
  out << "| | |\n|---|---|\n";
  out << "| method | `" << method << "` (settings in `adapter_config.json`, \"options\") |\n";
  out << "| task | " << task;
  if (inputs.is_object()) {
    const std::string where = "adapter_config.json, \"inputs\"";
    const bool prefix = field_or(inputs, "add_prefix", true, where);
    const bool corrected = field_or(inputs, "fix_quirks", false, where);
    out << " (inputs " << (prefix ? "with" : "without") << " the task prefix; "
        << (corrected ? "corrected" : "paper's") << " formats)";
  }
  out << " |\n";
  out << "| base model | " << base_name;
  if (base.contains("weights_fingerprint"))
    out << " (weights fingerprint `" << text_of(base, "weights_fingerprint", "") << "`, tokenizer `"
        << text_of(base, "tokenizer_fingerprint", "") << "`)";
  out << " |\n";
  out << "| trained parameters | " << grouped(parameters) << " |\n";
  out << "| scores | " << scores_line(scores) << " |\n";
  if (config.contains("command") && config["command"].is_string())
    out << "| made by | `" << config["command"].get<std::string>() << "` |\n";
  out << "| library | compacter.cpp " << text_of(config, "library_version", "?") << " |\n\n";
  out << "Use it with its base model (the fingerprints must match; see the main README):\n\n";
  out << "```sh\n";
  out << "build/compacter predict --model BASE_MODEL_DIR --adapter THIS_DIR --text 'an input'\n";
  if (inputs.is_object() && inputs.contains("fields") && inputs["fields"].is_array()) {
    nlohmann::json example = nlohmann::json::object();
    for (const auto& field : inputs["fields"])
      if (field.is_string()) example[field.get<std::string>()] = "...";
    out << "echo '" << example.dump()
        << "' | build/compacter predict --model BASE_MODEL_DIR --adapter THIS_DIR\n"
        << "# (the task's own fields, written as training wrote them)\n";
  }
  out << "```\n";
  return out.str();
}

void write_adapter_card(const std::string& dir, const nlohmann::json& config, int64_t parameters,
                        const nlohmann::json& scores) {
  std::string card;
  try {
    card = adapter_card(config, parameters, scores);
  } catch (const Error& e) {  // "adapter_config.json, ...": which adapter's
    throw Error(cat(dir, "/", e.what()));
  }
  write_text_atomically(dir + "/" + kAdapterCardFile, card);
}

void update_adapter_card_scores(const std::string& dir, const nlohmann::json& scores) {
  const nlohmann::json config = read_adapter_config(dir);
  const safetensors::File file = safetensors::File::open(dir + "/" + kAdapterWeightsFile);
  int64_t parameters = 0;
  for (const auto& info : file.header().tensors) parameters += info.numel();
  write_adapter_card(dir, config, parameters, scores);
}

}  // namespace compacter::peft

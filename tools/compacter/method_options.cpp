// Method flags generated from COMPACTER_PEFT_OPTIONS (each option declared once, in methods.h).
#include "method_options.h"

#include <algorithm>
#include <sstream>

#include "compacter/core/error.h"
#include "compacter/peft/adapter_file.h"

namespace compacter::cli {

namespace {

std::string flag_name(std::string name) {
  std::replace(name.begin(), name.end(), '_', '-');
  return "--" + name;
}

std::string method_list() {
  std::ostringstream out;
  for (const auto& m : peft::all_methods()) out << (out.tellp() > 0 ? ", " : "") << m.name;
  return out.str();
}

}  // namespace

void add_method_options(CLI::App& cmd, MethodOptions& m, bool with_adapter) {
  cmd.add_option("--method", m.method, "fine-tuning method: " + method_list());
  cmd.add_option("--init-seed", m.init_seed, "seed of the method's random init")
      ->capture_default_str();
  if (with_adapter)
    cmd.add_option("--adapter", m.adapter_dir,
                   "adapter directory to load (adapter_config.json + adapter_model.safetensors)");
  const std::string group = "Method options (defaults: the method's paper settings)";
#define COMPACTER_ADD_METHOD_FLAG(type, name, def, help)                            \
  m.given.emplace_back(#name, cmd.add_option(flag_name(#name), m.values.name, help) \
                                  ->group(group)                                    \
                                  ->type_name(std::is_same_v<type, bool> ? "BOOL" : ""));
  COMPACTER_PEFT_OPTIONS(COMPACTER_ADD_METHOD_FLAG)
#undef COMPACTER_ADD_METHOD_FLAG
}

peft::PeftOptions resolve_peft_options(const MethodOptions& m, const nlohmann::json& config) {
  peft::PeftOptions o = peft::method_defaults(m.method);
  if (!config.is_null()) peft::options_from_json(config, "method options", o);
#define COMPACTER_APPLY_GIVEN(type, name, def, help) \
  for (const auto& [key, opt] : m.given)             \
    if (key == #name && opt->count() > 0) o.name = m.values.name;
  COMPACTER_PEFT_OPTIONS(COMPACTER_APPLY_GIVEN)
#undef COMPACTER_APPLY_GIVEN
  return o;
}

std::optional<peft::Attachment> apply_method(const MethodOptions& m, nn::T5ModelImpl& model) {
  if (!m.adapter_dir.empty()) {
    if (!m.method.empty()) {
      const std::string saved = peft::read_adapter_spec(m.adapter_dir).method;
      check(saved == m.method, "--method ", m.method, " contradicts the adapter in ", m.adapter_dir,
            ", which is ", saved);
    }
    for (const auto& [key, opt] : m.given)
      check(opt->count() == 0, flag_name(key),
            " cannot be combined with --adapter (the adapter's saved options apply)");
    return peft::load_adapter(model, m.adapter_dir);
  }
  if (m.method.empty()) return std::nullopt;
  return peft::attach(m.method, resolve_peft_options(m), model, m.init_seed);
}

}  // namespace compacter::cli

// Method flags generated from PeftOptions (each option declared once, in peft/methods.h).
#include "method_options.h"

#include <sstream>

#include "common.h"
#include "compacter/core/error.h"
#include "compacter/peft/adapter_file.h"

namespace compacter::cli {

namespace {

std::string method_list() {
  std::ostringstream out;
  for (const auto& m : peft::all_methods()) out << (out.tellp() > 0 ? ", " : "") << m.name;
  return out.str();
}

}  // namespace

void add_method_options(CLI::App& cmd, MethodOptions& m, bool with_adapter) {
  cmd.add_option("--method", m.method, "fine-tuning method: " + method_list())
      ->check(CLI::Validator(
          [](std::string& name) {
            try {
              peft::find_method(name);
              return std::string();
            } catch (const Error& e) {
              return std::string(e.what());
            }
          },
          "METHOD"));
  m.init_seed_flag = cmd.add_option("--init-seed", m.init_seed,
                                    "seed of the method's random init (default: --seed)");
  if (with_adapter) {
    cmd.add_option("--adapter", m.adapter_dir,
                   "adapter directory to load (adapter_config.json + adapter_model.safetensors)");
    add_allow_base_mismatch_flag(cmd, m.allow_base_mismatch);
  }
  add_option_flags(cmd, m.values, m.given,
                   "Method options (defaults: the method's paper settings; see `compacter "
                   "methods`)");
}

peft::PeftOptions resolve_peft_options(const MethodOptions& m, const nlohmann::json& config) {
  peft::PeftOptions o = peft::method_defaults(m.method);
  if (!config.is_null()) peft::options_from_json(config, "method options", o);
  apply_given_flags(m.values, m.given, o);
  return o;
}

std::optional<uint64_t> given_init_seed(const MethodOptions& m) {
  if (m.init_seed_flag && m.init_seed_flag->count() > 0) return m.init_seed;
  return std::nullopt;
}

std::optional<peft::Attachment> apply_method(const MethodOptions& m, nn::T5ModelImpl& model,
                                             const peft::AdapterLoadOptions& checks) {
  if (!m.adapter_dir.empty()) {
    if (!m.method.empty()) {
      const std::string saved = peft::read_adapter_spec(m.adapter_dir).method;
      check_usage(saved == m.method, "--method ", m.method, " contradicts the adapter in ",
                  m.adapter_dir, ", which is ", saved);
    }
    for (const auto& [key, opt] : m.given)
      check_usage(opt->count() == 0, flag_name(key),
                  " cannot be combined with --adapter (the adapter's saved options apply)");
    return peft::load_adapter(model, m.adapter_dir, checks);
  }
  if (m.method.empty()) return std::nullopt;
  return peft::attach(m.method, resolve_peft_options(m), model, m.init_seed);
}

}  // namespace compacter::cli

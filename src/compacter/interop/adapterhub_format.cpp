// AdapterHub bottleneck adapter folders out and in (see adapterhub_format.h).
#include "compacter/interop/adapterhub_format.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/interop/import_config.h"
#include "compacter/interop/staged_dir.h"
#include "compacter/io/safetensors.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"

namespace compacter::interop {

namespace fs = std::filesystem;
using Tensors = std::vector<std::pair<std::string, torch::Tensor>>;

namespace {

constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kPickleWeights = "pytorch_adapter.bin";
constexpr const char* kPrefix = "transformer.";

// Where our methods put adapters, and with which layers.
struct Shape {
  bool self_attention = false, feed_forward = false, phm = false;
};

bool shape_of(const std::string& method, Shape& s) {
  if (method == "adapter")
    s = {true, true, false};
  else if (method == "pfeiffer")
    s = {true, false, false};
  else if (method == "phm" || method == "compacter")
    s = {true, true, true};
  else if (method == "compacter++")
    s = {false, true, true};
  else
    return false;
  return true;
}

// Our adapter tensor "{stack}.block.B.layer.L.adapter.{part}.{leaf}".
const std::regex& our_adapter_name() {
  static const std::regex re(
      R"(^((?:encoder|decoder)\.block\.\d+\.layer\.\d+)\.adapter\.(pre_layer_norm|down_sampler|up_sampler|post_layer_norm)\.(\w+)$)");
  return re;
}

// AdapterHub's "[transformer.]{stack}.block.B.layer.L.adapters.NAME.{module}.{leaf}".
const std::regex& hub_adapter_name() {
  static const std::regex re(
      R"(^((?:encoder|decoder)\.block\.\d+\.layer\.\d+)\.adapters\.([^.]+)\.(adapter_down\.0|adapter_down\.1|adapter_up|adapter_norm_after|adapter_norm_before)\.(\w+)$)");
  return re;
}

bool is_t5_tensor(const std::string& name) {
  return name.find(".adapter.") == std::string::npos && name != "phm_rule";
}

nlohmann::json bn_config(const Shape& s, const peft::PeftOptions& o) {
  const bool factorized = s.phm && o.factorized_phm;
  return {{"architecture", nullptr},
          {"mh_adapter", s.self_attention},
          {"output_adapter", s.feed_forward},
          {"reduction_factor", o.reduction_factor},
          {"non_linearity", o.non_linearity},
          {"original_ln_before", false},
          {"original_ln_after", true},
          {"ln_before", o.layer_norm_before},
          {"ln_after", o.layer_norm_after},
          {"init_weights", "bert"},
          {"init_weights_seed", nullptr},
          {"is_parallel", false},
          {"scaling", 1.0},
          {"use_gating", false},
          {"residual_before_ln", true},
          {"adapter_residual_before_ln", false},
          {"inv_adapter", nullptr},
          {"inv_adapter_reduction_factor", nullptr},
          {"cross_adapter", false},
          {"leave_out", nlohmann::json::array()},
          {"dropout", 0.0},
          {"phm_layer", s.phm},
          {"phm_dim", o.n},
          {"factorized_phm_W", factorized},
          {"shared_W_phm", false},
          {"shared_phm_rule", s.phm && o.shared_phm_rule},
          {"factorized_phm_rule", false},
          {"phm_c_init", o.phm_c_init},
          {"phm_init_range", o.phm_init_range},
          {"learn_phm", o.learn_phm},
          {"hypercomplex_nonlinearity", o.weight_init},
          {"phm_rank", o.rank},
          {"phm_bias", true},
          {"stochastic_depth", 0.0}};
}

std::string default_name(const nlohmann::json& ours, const std::string& method) {
  std::string name = ours.contains("task") && ours["task"].is_string() && !ours["task"].empty()
                         ? ours["task"].get<std::string>()
                         : method;
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-') ch = '_';
  if (name == "compacter__") name = "compacter_pp";
  return name;
}

}  // namespace

InteropReport export_adapterhub(const AdapterHubExportOptions& o) {
  const ExportSource source = resolve_export_source(o.source);
  const std::string config_path = source.adapter_dir + "/" + peft::kAdapterConfigFile;
  const peft::AdapterSpec spec = peft::read_adapter_spec(source.adapter_dir);
  const nlohmann::json ours = peft::read_adapter_config(source.adapter_dir);
  Shape shape;
  check(shape_of(spec.method, shape), "export --to adapterhub: ", config_path, ": method ",
        spec.method,
        spec.method == "lowrank" ? " (LowRank projections W = u v^T) has no AdapterHub layer"
        : spec.method == "adapterdrop"
            ? " has no exact AdapterHub form (its leave_out counts decoder layers its own way)"
            : " is not a bottleneck adapter",
        "; AdapterHub's: adapter, pfeiffer, phm, compacter, compacter++",
        spec.method == "lora" || spec.method == "ia3" || spec.method == "prompt-r" ||
                spec.method == "prompt-t"
            ? " (use --to peft)"
            : "");
  check(!shape.phm || spec.options.learn_phm, "export --to adapterhub: ", config_path,
        ": learn_phm is false, so the adapter file holds no A (it is drawn again from the seed "
        "when loaded here), and AdapterHub would draw its own; not exported");
  const std::string name = o.name.empty() ? default_name(ours, spec.method) : o.name;
  check_usage(!name.empty() && name.find('.') == std::string::npos, "--name \"", name,
              "\": an AdapterHub adapter name must be non-empty and hold no '.'");
  const std::string weights = source.adapter_dir + "/" + peft::kAdapterWeightsFile;
  const Tensors tensors = read_tensor_file(weights);

  Tensors hub, extra;
  for (const auto& [tensor, t] : tensors) {
    const torch::Tensor value = t.to(torch::kFloat32).contiguous();
    std::smatch m;
    if (tensor == "phm_rule") {
      hub.emplace_back(cat(kPrefix, "shared_parameters.", name, ".phm_rule"), value);
    } else if (std::regex_match(tensor, m, our_adapter_name())) {
      const std::string base = cat(kPrefix, m[1].str(), ".adapters.", name, ".");
      const std::string part = m[2].str(), leaf = m[3].str();
      if (part == "pre_layer_norm") {
        hub.emplace_back(base + "adapter_norm_before." + leaf, value);
        hub.emplace_back(base + "adapter_down.0." + leaf, value);  // the same module, twice
      } else if (part == "down_sampler") {
        hub.emplace_back(
            base + (spec.options.layer_norm_before ? "adapter_down.1." : "adapter_down.0.") + leaf,
            value);
      } else if (part == "up_sampler") {
        hub.emplace_back(base + "adapter_up." + leaf, value);
      } else {
        hub.emplace_back(base + "adapter_norm_after." + leaf, value);
      }
    } else {
      check(is_t5_tensor(tensor), weights, ": unexpected tensor \"", tensor, "\"");
      extra.emplace_back(tensor, value);
    }
  }

  nlohmann::json model_name = nullptr;
  if (!o.model.empty())
    model_name = o.model;
  else if (ours.contains("base") && ours["base"].is_object() && ours["base"].contains("name"))
    model_name = ours["base"]["name"];
  const nlohmann::json& shape_json = ours.at("base_model");
  const nlohmann::json config = {{"config", bn_config(shape, spec.options)},
                                 {"hidden_size", shape_json.at("d_model")},
                                 {"model_class", "T5AdapterModel"},
                                 {"model_name", model_name},
                                 {"model_type", "t5"},
                                 {"name", name},
                                 {"version", kAdapterHubVersion}};
  StagedDir out(o.out, o.overwrite, source.adapter_dir);
  safetensors::save(out.file(kAdapterHubWeights), hub, {{"format", "pt"}});
  write_text_atomically(out.file(kConfigFile), config.dump(2) + "\n");
  InteropReport report;
  report.method = spec.method;
  report.out = o.out;
  report.files = {kAdapterHubWeights, kConfigFile};
  if (!extra.empty()) {
    safetensors::save(out.file(kAdapterHubExtra), extra, {{"format", "pt"}});
    report.files.push_back(kAdapterHubExtra);
    report.notes.push_back(
        cat(kAdapterHubExtra, ": the ", extra.size(), " T5 tensors this adapter also trains (",
            spec.options.train_layer_norms ? "layer norms" : "",
            spec.options.train_layer_norms && spec.options.train_lm_head ? ", " : "",
            spec.options.train_lm_head ? "output layer" : "",
            "); AdapterHub does not load them: load them into the T5 with load_state_dict(..., "
            "strict=False) for our outputs"));
  }
  out.commit();
  return report;
}

// ---------------------------------------------------------------------------------------------
// Import

InteropReport import_adapterhub(const ImportOptions& o) {
  check(fs::is_directory(o.dir), o.dir, ": no such folder (expected an AdapterHub adapter folder)");
  const std::string path = (fs::path(o.dir) / kConfigFile).string();
  const AdapterHubImportConfig h = adapterhub_import_config(read_json_object(path), path);
  const std::string& method = h.method;
  peft::PeftOptions options = peft::method_defaults(method);
  options.reduction_factor = h.reduction_factor;
  options.non_linearity = h.non_linearity;
  options.layer_norm_before = h.layer_norm_before;
  options.layer_norm_after = h.layer_norm_after;
  if (h.phm) {
    options.n = h.phm_dim;
    options.rank = h.phm_rank;
    options.shared_phm_rule = h.shared_phm_rule;
    options.factorized_phm = h.factorized_phm;
    // Ours stores A only when it trains; a fixed A of AdapterHub's is loaded as a trained one, so
    // that the file's values are used (it then trains if the adapter is trained further here).
    options.learn_phm = true;
    if (h.phm_c_init) options.phm_c_init = *h.phm_c_init;
    if (h.phm_init_range) options.phm_init_range = *h.phm_init_range;
    if (h.weight_init) options.weight_init = *h.weight_init;
  }

  // The tensors, renamed to ours.
  std::string file;
  if (fs::exists(fs::path(o.dir) / kAdapterHubWeights))
    file = (fs::path(o.dir) / kAdapterHubWeights).string();
  else if (fs::exists(fs::path(o.dir) / kPickleWeights))
    file = (fs::path(o.dir) / kPickleWeights).string();
  check(!file.empty(), o.dir, ": no weights (expected ", kAdapterHubWeights, " or ", kPickleWeights,
        ")");
  const Tensors tensors = read_tensor_file(file);
  std::string name = h.name;
  std::map<std::string, std::pair<std::string, torch::Tensor>> ours;  // ours -> (hub key, value)
  auto put = [&](const std::string& to, const std::string& key, const torch::Tensor& t) {
    const auto it = ours.find(to);
    if (it != ours.end()) {
      check(torch::equal(it->second.second, t), file, ": \"", key, "\" and \"", it->second.first,
            "\" are the same module and must hold the same values");
      return;
    }
    ours[to] = {key, t};
  };
  for (const auto& [key, t] : tensors) {
    std::string k = key.rfind(kPrefix, 0) == 0 ? key.substr(std::string(kPrefix).size()) : key;
    std::smatch m;
    if (std::regex_match(k, m, std::regex(R"(^shared_parameters\.([^.]+)\.phm_rule$)"))) {
      if (name.empty()) name = m[1].str();
      check(m[1].str() == name, file, ": tensor \"", key, "\" belongs to adapter \"", m[1].str(),
            "\", not \"", name, "\"");
      put("phm_rule", key, t);
      continue;
    }
    check(
        std::regex_match(k, m, hub_adapter_name()), file, ": tensor \"", key,
        "\" is not one of a bottleneck adapter's (expected "
        "[transformer.]{encoder,decoder}.block.B.layer.L.adapters.NAME.{adapter_down.0,adapter_up,"
        "adapter_norm_after,adapter_norm_before}.P or "
        "transformer.shared_parameters.NAME.phm_rule)");
    if (name.empty()) name = m[2].str();
    check(m[2].str() == name, file, ": tensor \"", key, "\" belongs to adapter \"", m[2].str(),
          "\", not \"", name, "\"");
    const std::string module = m[3].str(), leaf = m[4].str();
    std::string part;
    if (module == "adapter_up")
      part = "up_sampler";
    else if (module == "adapter_norm_after")
      part = "post_layer_norm";
    else if (module == "adapter_norm_before")
      part = "pre_layer_norm";
    else if (module == "adapter_down.0")
      part = options.layer_norm_before ? "pre_layer_norm" : "down_sampler";
    else
      part = "down_sampler";  // adapter_down.1: after adapter_norm_before
    put(cat(m[1].str(), ".adapter.", part, ".", leaf), key, t);
  }
  const fs::path extra_file = fs::path(o.dir) / kAdapterHubExtra;
  options.train_layer_norms = false;
  options.train_lm_head = false;
  if (fs::exists(extra_file)) {
    for (const auto& [key, t] : read_tensor_file(extra_file.string())) {
      const bool norm = key.find("layer_norm.weight") != std::string::npos;
      const bool head = key == "shared.weight" || key == "lm_head.weight";
      check(norm || head, extra_file.string(), ": unexpected tensor \"", key,
            "\" (expected T5 layer norms, shared.weight or lm_head.weight)");
      (norm ? options.train_layer_norms : options.train_lm_head) = true;
      put(key, key, t);
    }
  }

  StagedDir out(o.out, o.overwrite, o.dir);
  train::BaseModel base = train::load_base_model(o.base);
  nn::T5ModelImpl& model = *base.model;
  if (!h.hidden_size.is_null())
    check(h.hidden_size.get<int64_t>() == model.config().d_model, path, ": hidden_size ",
          h.hidden_size.dump(), ", but the base model's d_model is ", model.config().d_model);
  peft::attach(method, options, model, 0);
  {
    torch::NoGradGuard no_grad;
    for (auto& [tensor, t] : peft::trainable_named_parameters(model)) {
      const auto it = ours.find(tensor);
      check(it != ours.end(), file, ": no tensor for ", tensor, " (method ", method, " from ", path,
            ")");
      check(it->second.second.sizes() == t.sizes(), file, ": tensor \"", it->second.first,
            "\" has shape ", it->second.second.sizes(), ", expected ", t.sizes());
      t.set_data(it->second.second.to(t.device(), torch::kFloat32).contiguous());
      ours.erase(it);
    }
  }
  check(ours.empty(), file, ": tensor \"", ours.empty() ? "" : ours.begin()->second.first,
        "\" has no place in a ", method, " adapter of this model");
  nlohmann::json extra = {{"base", peft::base_identity_to_json(base.identity)},
                          {"imported_from",
                           {{"format", "adapterhub"},
                            {"dir", fs::absolute(o.dir).lexically_normal().string()},
                            {"name", name},
                            {"model_name", h.model_name}}}};
  if (!o.command.empty()) extra["command"] = o.command;
  peft::save_adapter(model, {method, options, 0}, out.path(), extra);
  out.commit();
  InteropReport report;
  report.method = method;
  report.out = o.out;
  report.files = {peft::kAdapterWeightsFile, peft::kAdapterConfigFile, "README.md"};
  report.notes = h.notes;
  if (!fs::exists(extra_file) && method == "compacter++")
    report.notes.push_back("no T5 layer norms with it: the base model's are used");
  return report;
}

}  // namespace compacter::interop

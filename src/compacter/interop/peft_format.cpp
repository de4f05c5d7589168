// PEFT adapter folders out and in (see peft_format.h).
#include "compacter/interop/peft_format.h"

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

constexpr const char* kPeftConfig = "adapter_config.json";
constexpr const char* kPeftWeights = "adapter_model.safetensors";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string last_component(const std::string& path) {
  return path.substr(path.rfind('.') + 1);
}

bool is_prompt_method(const std::string& method) {
  return method == "prompt-r" || method == "prompt-t";
}

// ---------------------------------------------------------------------------------------------
// Export

nlohmann::json lora_config(const peft::PeftOptions& o) {
  return {{"r", o.rank},
          {"lora_alpha", o.lora_alpha},
          {"lora_dropout", o.lora_dropout},
          {"target_modules", peft::parse_name_list(o.target_modules)},
          {"fan_in_fan_out", false},
          {"bias", "none"},
          {"modules_to_save", nullptr},
          {"init_lora_weights", true},
          {"layers_to_transform", nullptr},
          {"layers_pattern", nullptr},
          {"rank_pattern", nlohmann::json::object()},
          {"alpha_pattern", nlohmann::json::object()},
          {"use_rslora", false},
          {"use_dora", false}};
}

nlohmann::json ia3_config(const peft::PeftOptions& o) {
  const std::vector<std::string> targets = peft::parse_name_list(o.target_modules);
  std::vector<std::string> feedforward;
  for (const std::string& t : targets)
    if (t == "wo") feedforward.push_back(t);
  return {{"target_modules", targets},
          {"feedforward_modules", feedforward},
          {"fan_in_fan_out", false},
          {"modules_to_save", nullptr},
          {"init_ia3_weights", true}};
}

nlohmann::json prompt_config(const peft::PeftOptions& o, const nlohmann::json& shape) {
  return {{"num_virtual_tokens", o.prompt_length},
          {"token_dim", shape.at("d_model")},
          {"num_transformer_submodules", 1},
          {"num_attention_heads", shape.at("num_heads")},
          {"num_layers", shape.at("num_layers")},
          {"prompt_tuning_init", "RANDOM"},
          {"prompt_tuning_init_text", nullptr},
          {"tokenizer_name_or_path", nullptr},
          {"tokenizer_kwargs", nullptr}};
}

}  // namespace

InteropReport export_peft(const PeftExportOptions& o) {
  const ExportSource source = resolve_export_source(o.source);
  const std::string config_path = source.adapter_dir + "/" + peft::kAdapterConfigFile;
  const peft::AdapterSpec spec = peft::read_adapter_spec(source.adapter_dir);
  const nlohmann::json ours = peft::read_adapter_config(source.adapter_dir);
  const std::string& method = spec.method;
  check(method == "lora" || method == "ia3" || is_prompt_method(method),
        "export --to peft: ", config_path, ": method ", method,
        " has no PEFT form (PEFT's: lora, ia3, prompt-r / prompt-t as prompt tuning); use --to ",
        method == "full" ? "hf" : "adapterhub (compacter, compacter++, pfeiffer)");
  check(!spec.options.train_layer_norms && !spec.options.train_lm_head,
        "export --to peft: ", config_path, ": this ", method, " adapter also trains T5's ",
        spec.options.train_layer_norms ? "layer norms (train_layer_norms)"
                                       : "output layer (train_lm_head)",
        ", which a PEFT adapter can only hold as whole modules_to_save copies; not exported");
  const std::string weights = source.adapter_dir + "/" + peft::kAdapterWeightsFile;
  const Tensors tensors = read_tensor_file(weights);

  Tensors out_tensors;
  for (const auto& [name, t] : tensors) {
    std::string key;
    if (is_prompt_method(method)) {
      check(name == "encoder.prompt.weight", weights, ": unexpected tensor \"", name,
            "\" in a prompt tuning adapter");
      key = "prompt_embeddings";
    } else {
      const bool known =
          method == "lora" ? ends_with(name, ".lora_A.weight") || ends_with(name, ".lora_B.weight")
                           : ends_with(name, ".ia3_l");
      check(known, weights, ": unexpected tensor \"", name, "\" in a ", method, " adapter");
      key = kPeftKeyPrefix + name;
    }
    out_tensors.emplace_back(key, t.to(torch::kFloat32).contiguous());
  }

  nlohmann::json config = method == "lora"  ? lora_config(spec.options)
                          : method == "ia3" ? ia3_config(spec.options)
                                            : prompt_config(spec.options, ours.at("base_model"));
  config["peft_type"] = method == "lora" ? "LORA" : method == "ia3" ? "IA3" : "PROMPT_TUNING";
  config["task_type"] = "SEQ_2_SEQ_LM";
  config["inference_mode"] = true;
  config["revision"] = nullptr;
  config["auto_mapping"] = nullptr;
  nlohmann::json base_name = nullptr;
  if (!o.model.empty())
    base_name = o.model;
  else if (ours.contains("base") && ours["base"].is_object() && ours["base"].contains("name"))
    base_name = ours["base"]["name"];
  config["base_model_name_or_path"] = base_name;

  StagedDir out(o.out, o.overwrite, source.adapter_dir);
  safetensors::save(out.file(kPeftWeights), out_tensors, {{"format", "pt"}});
  write_text_atomically(out.file(kPeftConfig), config.dump(2) + "\n");
  out.commit();
  InteropReport report;
  report.method = method;
  report.out = o.out;
  report.files = {kPeftWeights, kPeftConfig};
  if (base_name.is_null())
    report.notes.push_back(
        "base_model_name_or_path is null: the adapter records no base name (give --model)");
  if (method == "prompt-t")
    report.notes.push_back(
        "prompt_tuning_init RANDOM: PEFT has no init like prompt-t's (it only matters before "
        "training)");
  return report;
}

// ---------------------------------------------------------------------------------------------
// Import

namespace {

// The model's linear layers by path.
std::map<std::string, nn::LinearImpl*> linears_by_path(nn::T5ModelImpl& model) {
  std::map<std::string, nn::LinearImpl*> out;
  model.for_each_linear(
      [&](const std::string& path, nn::LinearImpl& linear) { out[path] = &linear; });
  return out;
}

// The modules a PEFT adapter touches, from its tensors "base_model.model.<path><suffix>": each
// path must be one of the model's linear layers, and the names they share must be on every layer
// of that name (ours puts a method on every layer of a name, in every block of both stacks).
// Returns, for each suffix, path -> tensor; `names` gets the last components (q, v, ...).
std::map<std::string, std::map<std::string, torch::Tensor>> modules_of(
    const Tensors& tensors, const std::string& file, const std::vector<std::string>& suffixes,
    const std::map<std::string, nn::LinearImpl*>& linears, std::vector<std::string>& names,
    const std::string& what) {
  std::map<std::string, std::map<std::string, torch::Tensor>> by_suffix;
  std::set<std::string> seen;
  for (const auto& [key, t] : tensors) {
    check(key.rfind(kPeftKeyPrefix, 0) == 0, file, ": tensor \"", key, "\" does not start with \"",
          kPeftKeyPrefix, "\" (not a ", what, " tensor of PEFT's)");
    std::string suffix;
    for (const std::string& s : suffixes)
      if (ends_with(key, s)) suffix = s;
    check(!suffix.empty(), file, ": tensor \"", key, "\" is not one of ", what,
          "'s tensors (expected names ending in ", suffixes.front(),
          suffixes.size() > 1 ? cat(" or ", suffixes.back()) : std::string(),
          "); modules_to_save, biases or embedding adapters cannot be imported");
    const std::string path =
        key.substr(std::string(kPeftKeyPrefix).size(),
                   key.size() - std::string(kPeftKeyPrefix).size() - suffix.size());
    check(linears.count(path), file, ": tensor \"", key, "\": \"", path,
          "\" is not a linear layer of the T5 blocks (q, k, v, o, wi, wi_0, wi_1, wo of either "
          "stack)");
    by_suffix[suffix][path] = t;
    seen.insert(last_component(path));
  }
  check(!tensors.empty(), file, ": holds no tensors");
  for (const auto& [path, linear] : linears) {
    if (!seen.count(last_component(path))) continue;
    for (const std::string& s : suffixes)
      check(by_suffix[s].count(path), file, ": no tensor \"", kPeftKeyPrefix, path, s, "\": the ",
            what, " adapter covers some of the \"", last_component(path),
            "\" layers only, while ours covers every one (layers_to_transform is not supported)");
  }
  names.clear();
  for (const char* n : {"q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"})
    if (seen.count(n)) names.push_back(n);
  return by_suffix;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

void check_shape(const torch::Tensor& t, const std::vector<int64_t>& want, const std::string& file,
                 const std::string& key, const std::string& why) {
  check(t.sizes() == c10::IntArrayRef(want), file, ": tensor \"", key, "\" has shape ", t.sizes(),
        ", expected ", c10::IntArrayRef(want), " (", why, ")");
}

// LoRA: options and our tensors (name -> value).
void read_lora(const PeftImportConfig& c, const Tensors& tensors, const std::string& file,
               nn::T5ModelImpl& model, peft::PeftOptions& o,
               std::map<std::string, torch::Tensor>& ours) {
  o = peft::method_defaults("lora");
  o.rank = c.rank;
  o.lora_alpha = c.lora_alpha;
  o.lora_dropout = c.lora_dropout;
  o.train_layer_norms = false;
  o.train_lm_head = false;
  const auto linears = linears_by_path(model);
  std::vector<std::string> names;
  const auto by =
      modules_of(tensors, file, {".lora_A.weight", ".lora_B.weight"}, linears, names, "LoRA");
  o.target_modules = join(names);
  for (const auto& [path, a] : by.at(".lora_A.weight")) {
    const nn::LinearImpl& l = *linears.at(path);
    check_shape(a, {o.rank, l.in_features()}, file, cat(kPeftKeyPrefix, path, ".lora_A.weight"),
                cat("r = ", o.rank, " by the layer's ", l.in_features(), " inputs"));
    ours[path + ".lora_A.weight"] = a;
  }
  for (const auto& [path, b] : by.at(".lora_B.weight")) {
    const nn::LinearImpl& l = *linears.at(path);
    check_shape(b, {l.out_features(), o.rank}, file, cat(kPeftKeyPrefix, path, ".lora_B.weight"),
                cat("the layer's ", l.out_features(), " outputs by r = ", o.rank));
    ours[path + ".lora_B.weight"] = b;
  }
}

void read_ia3(const PeftImportConfig& c, const Tensors& tensors, const std::string& file,
              nn::T5ModelImpl& model, peft::PeftOptions& o,
              std::map<std::string, torch::Tensor>& ours) {
  o = peft::method_defaults("ia3");
  o.train_layer_norms = false;
  o.train_lm_head = false;
  const auto linears = linears_by_path(model);
  std::vector<std::string> names;
  const auto by = modules_of(tensors, file, {".ia3_l"}, linears, names, "(IA)^3");
  for (const std::string& n : names)
    check(n == "k" || n == "v" || n == "wo" || n == "wi_1", file, ": (IA)^3 on \"", n,
          "\" layers: ours scales k, v, wo or wi_1 only");
  o.target_modules = join(names);
  for (const auto& [path, v] : by.at(".ia3_l")) {
    const nn::LinearImpl& l = *linears.at(path);
    const bool ff = last_component(path) == "wo";
    check(c.feedforward(path, model.config().model_type) == ff, c.path, ": feedforward_modules ",
          ff ? "leaves out " : "includes ", path, ": PEFT then scales its ",
          ff ? "output" : "input", ", ours its ", ff ? "input" : "output",
          " (ours: wo's input; k, v ", "and wi_1 outputs)");
    const std::string key = cat(kPeftKeyPrefix, path, ".ia3_l");
    if (ff)
      check_shape(v, {1, l.in_features()}, file, key, "a feed-forward layer's input scale");
    else
      check_shape(v, {l.out_features(), 1}, file, key, "a layer's output scale");
    ours[path + ".ia3_l"] = v;
  }
}

void read_prompt(const PeftImportConfig& c, const Tensors& tensors, const std::string& file,
                 nn::T5ModelImpl& model, peft::PeftOptions& o,
                 std::map<std::string, torch::Tensor>& ours) {
  const int64_t n = c.num_virtual_tokens, parts = c.transformer_submodules;
  const int64_t d = model.config().d_model;
  if (!c.token_dim.is_null())
    check(c.token_dim == d, c.path, ": token_dim = ", c.token_dim.dump(),
          ", but the base model's d_model is ", d);
  check(tensors.size() == 1 && tensors[0].first == "prompt_embeddings", file,
        ": expected exactly one tensor, \"prompt_embeddings\"",
        tensors.empty() ? std::string() : cat(", found \"", tensors[0].first, "\""),
        tensors.size() > 1 ? cat(" and ", tensors.size() - 1, " more") : std::string());
  const torch::Tensor& p = tensors[0].second;
  check_shape(
      p, {n * parts, d}, file, "prompt_embeddings",
      cat("num_virtual_tokens ", n, " x num_transformer_submodules ", parts, " by token_dim ", d));
  o = peft::method_defaults(c.method);
  o.prompt_length = n;
  o.train_layer_norms = false;
  o.train_lm_head = false;
  ours["encoder.prompt.weight"] = p.narrow(0, 0, n).clone();
}

}  // namespace

InteropReport import_peft(const ImportOptions& o) {
  check(fs::is_directory(o.dir), o.dir, ": no such folder (expected a PEFT adapter folder)");
  const std::string config_path = (fs::path(o.dir) / kPeftConfig).string();
  const PeftImportConfig c = peft_import_config(read_json_object(config_path), config_path);
  const std::string file = find_weights_file(o.dir, "adapter_model");
  const Tensors tensors = read_tensor_file(file);
  StagedDir out(o.out, o.overwrite, o.dir);

  train::BaseModel base = train::load_base_model(o.base);
  nn::T5ModelImpl& model = *base.model;
  const std::string& method = c.method;
  peft::PeftOptions options;
  std::map<std::string, torch::Tensor> ours;
  InteropReport report;
  if (c.peft_type == "LORA")
    read_lora(c, tensors, file, model, options, ours);
  else if (c.peft_type == "IA3")
    read_ia3(c, tensors, file, model, options, ours);
  else
    read_prompt(c, tensors, file, model, options, ours);
  report.notes = c.notes;

  peft::attach(method, options, model, 0);
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : peft::trainable_named_parameters(model)) {
      const auto it = ours.find(name);
      check(it != ours.end(), file, ": internal: no value for ", name);
      t.set_data(it->second.to(t.device(), torch::kFloat32).contiguous());
      ours.erase(it);
    }
  }
  check(ours.empty(), file, ": internal: ", ours.size(), " tensors left over");
  nlohmann::json extra = {{"base", peft::base_identity_to_json(base.identity)},
                          {"imported_from",
                           {{"format", "peft"},
                            {"dir", fs::absolute(o.dir).lexically_normal().string()},
                            {"peft_type", c.peft_type},
                            {"base_model_name_or_path", c.base_model_name_or_path}}}};
  if (!o.command.empty()) extra["command"] = o.command;
  peft::save_adapter(model, {method, options, 0}, out.path(), extra);
  out.commit();
  report.method = method;
  report.out = o.out;
  report.files = {peft::kAdapterWeightsFile, peft::kAdapterConfigFile, "README.md"};
  return report;
}

}  // namespace compacter::interop

// The configs `compacter import` reads, parsed without tensors or a model (see import_config.h).
#include "compacter/interop/import_config.h"

#include <algorithm>
#include <cmath>

#include "compacter/core/error.h"

namespace compacter::interop {

nlohmann::json json_object_from_text(const std::string& text, const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(path, ": not valid JSON (", e.what(), ")"));
  }
  check(j.is_object(), path, ": expected a JSON object");
  return j;
}

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A PEFT config being read: every check names the file and the key.
struct PeftConfig {
  std::string path;
  const nlohmann::json& j;

  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }
  // Refuses a value outside `allowed` (absent and null are PEFT's defaults and pass).
  void require(const char* key, std::initializer_list<nlohmann::json> allowed,
               const std::string& why) const {
    if (!has(key)) return;
    for (const nlohmann::json& a : allowed)
      if (j[key] == a) return;
    throw Error(cat(path, ": ", key, " = ", j[key].dump(), " cannot be imported: ", why));
  }
  int64_t positive_int(const char* key) const {
    check(has(key) && j[key].is_number_integer() && j[key].get<int64_t>() > 0, path,
          ": expected a positive integer \"", key, "\"",
          has(key) ? cat(", got ", j[key].dump()) : std::string());
    return j[key].get<int64_t>();
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    check(j[key].is_number(), path, ": \"", key, "\" must be a number, got ", j[key].dump());
    return j[key].get<double>();
  }
  std::string string(const char* key) const {
    check(has(key) && j[key].is_string(), path, ": expected a string \"", key, "\"");
    return j[key].get<std::string>();
  }
  void task_type(bool required) const {
    if (!required && !has("task_type")) return;
    check(has("task_type") && j["task_type"] == "SEQ_2_SEQ_LM", path,
          ": task_type = ", has("task_type") ? j["task_type"].dump() : std::string("null"),
          ", expected \"SEQ_2_SEQ_LM\" (a T5 encoder-decoder adapter)");
  }
  void modules_to_save() const {
    require("modules_to_save", {nlohmann::json::array()},
            "whole trained copies of modules have no place in our adapters");
  }
};

void read_lora(const PeftConfig& c, PeftImportConfig& out) {
  c.task_type(false);
  c.require("fan_in_fan_out", {false},
            "weights stored transposed (Conv1D layers); T5's are Linear");
  c.require("use_rslora", {false, true}, "expected true or false");
  c.require("use_dora", {false}, "DoRA's magnitude vectors have no counterpart here");
  c.require("rank_pattern", {nlohmann::json::object()},
            "per-layer ranks; ours has one r for every layer");
  c.require("alpha_pattern", {nlohmann::json::object()},
            "per-layer alphas; ours has one lora_alpha for every layer");
  c.require("layers_to_transform", {},
            "LoRA on some blocks only; ours puts it in every block of both stacks");
  c.require("layer_replication", {}, "replicated layers have no counterpart here");
  c.require("lora_bias", {false}, "a trained bias of lora_B has no counterpart here");
  c.require("trainable_token_indices", {}, "trained embedding rows have no counterpart here");
  c.require("target_parameters", {nlohmann::json::array()},
            "LoRA on parameters (not modules) has no counterpart here");
  c.require("use_qalora", {false}, "QA-LoRA pools the input of A; ours does not");
  c.require("init_lora_weights", {true, false, "gaussian", "eva", "orthogonal"},
            "this initialisation rewrites the base model's weights (the adapter then needs that "
            "rewritten base); convert it to a plain LoRA in PEFT first");
  c.modules_to_save();
  out.rank = c.positive_int("r");
  out.lora_alpha = c.number("lora_alpha", 8.0);
  if (c.has("use_rslora") && c.j["use_rslora"] == true) {
    // Rank-stabilised LoRA scales by lora_alpha / sqrt(r); ours by lora_alpha / r.
    const double alpha = out.lora_alpha;
    out.lora_alpha = alpha * std::sqrt(static_cast<double>(out.rank));
    check(std::isfinite(out.lora_alpha), c.path, ": lora_alpha ", alpha,
          " times sqrt(r = ", out.rank, ") (use_rslora) is beyond a double");
    out.notes.push_back(cat("use_rslora: PEFT's scaling lora_alpha / sqrt(r) = ", alpha, " / sqrt(",
                            out.rank, ") is written as our lora_alpha = ", out.lora_alpha,
                            " (scaling lora_alpha / r)"));
  }
  out.lora_dropout = c.number("lora_dropout", 0.0);
  check(out.lora_dropout >= 0.0 && out.lora_dropout < 1.0, c.path,
        ": lora_dropout must be in [0, 1), got ", out.lora_dropout);
}

void read_ia3(const PeftConfig& c, PeftImportConfig& out) {
  c.task_type(false);
  c.require("fan_in_fan_out", {false},
            "weights stored transposed (Conv1D layers); T5's are Linear");
  c.modules_to_save();
  if (!c.has("feedforward_modules")) return;
  out.feedforward_given = true;
  const nlohmann::json& f = c.j["feedforward_modules"];
  if (f.is_string()) {
    const std::string pattern = f.get<std::string>();
    check(pattern.size() <= kMaxPeftRegexLength, c.path,
          ": feedforward_modules is a regular expression of ", pattern.size(),
          " characters; at most ", kMaxPeftRegexLength, " are read");
    try {
      out.feedforward_regex.emplace(pattern, kMaxPeftRegexStates);
    } catch (const Error& e) {
      throw Error(cat(c.path, ": feedforward_modules ", f.dump(),
                      " is not a regular expression that can be read (", e.what(), ")"));
    }
    return;
  }
  check(f.is_array(), c.path, ": feedforward_modules must be a list or a string");
  for (const auto& item : f) {
    check(item.is_string(), c.path, ": feedforward_modules must hold strings");
    out.feedforward_names.push_back(item.get<std::string>());
  }
}

void read_prompt(const PeftConfig& c, PeftImportConfig& out) {
  c.task_type(true);
  out.num_virtual_tokens = c.positive_int("num_virtual_tokens");
  check(out.num_virtual_tokens <= kMaxPeftVirtualTokens, c.path,
        ": num_virtual_tokens = ", out.num_virtual_tokens, " is more than ", kMaxPeftVirtualTokens,
        " prompt rows");
  if (c.has("token_dim")) out.token_dim = c.j["token_dim"];
  if (c.has("num_transformer_submodules"))
    out.transformer_submodules = c.positive_int("num_transformer_submodules");
  check(out.transformer_submodules == 1 || out.transformer_submodules == 2, c.path,
        ": num_transformer_submodules = ", out.transformer_submodules, ", expected 1 or 2");
  const std::string init = c.has("prompt_tuning_init") ? c.string("prompt_tuning_init") : "RANDOM";
  out.method = init == "RANDOM" ? "prompt-r" : "prompt-t";
  const int64_t n = out.num_virtual_tokens;
  if (out.transformer_submodules == 2)
    out.notes.push_back(cat("prompt_embeddings rows ", n, "..", 2 * n - 1,
                            " dropped: PEFT's seq2seq prompt tuning keeps them for the decoder "
                            "but never reads them (peft_model.py prepends rows 0..",
                            n - 1, " to the encoder input only)"));
}

}  // namespace

bool PeftImportConfig::feedforward(const std::string& module_path,
                                   const std::string& model_type) const {
  if (!feedforward_given)
    return model_type == "t5" && module_path.substr(module_path.rfind('.') + 1) == "wo";
  if (feedforward_regex) return feedforward_regex->full_match(module_path);  // re.fullmatch
  for (const std::string& name : feedforward_names)
    if (ends_with(module_path, name)) return true;  // PEFT: key.endswith(...)
  return false;
}

PeftImportConfig peft_import_config(const nlohmann::json& j, const std::string& path) {
  check(j.is_object(), path, ": expected a JSON object");
  const PeftConfig c{path, j};
  PeftImportConfig out;
  out.path = path;
  out.peft_type = c.string("peft_type");
  const std::string& type = out.peft_type;
  check(type == "LORA" || type == "IA3" || type == "PROMPT_TUNING", path, ": peft_type \"", type,
        "\" cannot be imported (supported: LORA, IA3, PROMPT_TUNING)");
  if (c.has("base_model_name_or_path")) out.base_model_name_or_path = j["base_model_name_or_path"];
  if (type == "LORA") {
    out.method = "lora";
    read_lora(c, out);
  } else if (type == "IA3") {
    out.method = "ia3";
    read_ia3(c, out);
  } else {
    read_prompt(c, out);
  }
  return out;
}

PeftImportConfig peft_import_config_from_text(const std::string& text, const std::string& path) {
  return peft_import_config(json_object_from_text(text, path), path);
}

// ---------------------------------------------------------------------------------------------
// AdapterHub

namespace {

struct HubConfig {
  std::string path;
  const nlohmann::json& c;  // the "config" object

  bool has(const char* key) const { return c.contains(key) && !c[key].is_null(); }
  // Absent or null keys take BnConfig's defaults, which are the values ours needs.
  void require(const char* key, const nlohmann::json& want, const std::string& why) const {
    if (!has(key)) return;
    check(c[key] == want, path, ": config.", key, " = ", c[key].dump(),
          " cannot be imported (expected ", want.dump(), "): ", why);
  }
  bool flag(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    check(c[key].is_boolean(), path, ": config.", key, " must be true or false, got ",
          c[key].dump());
    return c[key].get<bool>();
  }
  std::string string(const char* key) const {
    check(c[key].is_string(), path, ": config.", key, " must be a string, got ", c[key].dump());
    return c[key].get<std::string>();
  }
  int64_t count(const char* key, int64_t fallback, int64_t most) const {
    if (!has(key)) return fallback;
    const nlohmann::json& v = c[key];
    check(v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(most)),
          path, ": config.", key, " must be an integer from 1 to ", most, ", got ", v.dump());
    const int64_t n = v.get<int64_t>();
    check(n >= 1 && n <= most, path, ": config.", key, " must be an integer from 1 to ", most,
          ", got ", n);
    return n;
  }
};

}  // namespace

AdapterHubImportConfig adapterhub_import_config(const nlohmann::json& j, const std::string& path) {
  check(j.is_object(), path, ": expected a JSON object");
  check(j.contains("config") && j["config"].is_object(), path,
        ": expected an object \"config\" (the adapter's full BnConfig, as adapters' save_adapter "
        "writes it)");
  const HubConfig h{path, j["config"]};
  check(!h.has("architecture"), path,
        ": config.architecture = ", h.c.value("architecture", nlohmann::json()).dump(),
        " cannot be imported (only bottleneck adapters: architecture null)");
  if (j.contains("model_type") && j["model_type"].is_string())
    check(j["model_type"] == "t5" || j["model_type"] == "mt5", path, ": model_type ",
          j["model_type"].dump(), ", expected \"t5\"");
  h.require("original_ln_before", false,
            "the adapter then reads x + h (the sublayer's output plus its residual), ours reads h "
            "(SeqBn / pfeiffer / CompacterPlusPlusConfig presets place it so)");
  h.require("original_ln_after", true, "ours adds the residual after the adapter");
  h.require("residual_before_ln", true, "ours adds the adapter to the sublayer's output");
  h.require("adapter_residual_before_ln", false, "ours adds the residual after ln_after");
  h.require("is_parallel", false, "ours is sequential");
  h.require("use_gating", false, "ours has no gate");
  h.require("inv_adapter", nullptr, "ours has no invertible adapters");
  h.require("cross_adapter", false, "ours places no adapter after cross-attention");
  h.require("shared_W_phm", false, "ours has no shared W");
  h.require("factorized_phm_rule", false, "ours has an unfactorised A");
  h.require("stochastic_depth", 0.0, "ours has no stochastic depth");
  if (h.has("scaling"))
    check(h.c["scaling"].is_number() && h.c["scaling"].get<double>() == 1.0, path,
          ": config.scaling = ", h.c["scaling"].dump(),
          " cannot be imported (ours adds A(h) unscaled)");
  if (h.has("leave_out"))
    check(h.c["leave_out"].is_array() && h.c["leave_out"].empty(), path,
          ": config.leave_out = ", h.c["leave_out"].dump(),
          " cannot be imported (ours puts adapters in every block)");
  AdapterHubImportConfig out;
  out.path = path;
  const bool self_attention = h.flag("mh_adapter", false),
             feed_forward = h.flag("output_adapter", false);
  const bool phm = h.flag("phm_layer", false);
  if (phm) h.require("phm_bias", true, "ours has a PHM bias");
  check(h.has("reduction_factor") && h.c["reduction_factor"].is_number(), path,
        ": config.reduction_factor must be a number (a per-layer mapping cannot be imported)");
  const double rf = h.c["reduction_factor"].get<double>();
  check(rf >= 1.0 && rf <= static_cast<double>(kMaxHubReductionFactor) && rf == std::floor(rf),
        path, ": config.reduction_factor = ", rf,
        " cannot be imported (ours takes a whole number from 1 to ", kMaxHubReductionFactor, ")");

  const bool shared = phm && h.flag("shared_phm_rule", true);
  const bool factorized = phm && h.flag("factorized_phm_W", true);
  std::string& method = out.method;
  if (!phm && self_attention && feed_forward)
    method = "adapter";
  else if (!phm && self_attention && !feed_forward)
    method = "pfeiffer";
  else if (phm && shared && factorized && self_attention && feed_forward)
    method = "compacter";
  else if (phm && shared && factorized && !self_attention && feed_forward)
    method = "compacter++";
  else if (phm && !shared && !factorized && self_attention && feed_forward)
    method = "phm";
  check(!method.empty(), path, ": config (mh_adapter ", self_attention, ", output_adapter ",
        feed_forward, ", phm_layer ", phm,
        phm ? cat(", shared_phm_rule ", shared, ", factorized_phm_W ", factorized) : std::string(),
        ") matches none of our methods (adapter, pfeiffer: dense after both / after "
        "self-attention; compacter, compacter++: shared A, factorised W after both / after the "
        "feed-forward; phm: own A, full W after both)");

  out.reduction_factor = static_cast<int64_t>(rf);
  if (h.has("non_linearity")) out.non_linearity = h.string("non_linearity");
  for (char& ch : out.non_linearity)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  out.layer_norm_before = h.flag("ln_before", false);
  out.layer_norm_after = h.flag("ln_after", false);
  out.phm = phm;
  if (phm) {
    out.phm_dim = h.count("phm_dim", 4, kMaxHubPhmDim);
    out.phm_rank = h.count("phm_rank", 1, kMaxHubPhmDim);
    out.shared_phm_rule = shared;
    out.factorized_phm = factorized;
    if (h.has("phm_c_init")) out.phm_c_init = h.string("phm_c_init");
    if (h.has("phm_init_range")) {
      check(h.c["phm_init_range"].is_number(), path,
            ": config.phm_init_range must be a number, got ", h.c["phm_init_range"].dump());
      out.phm_init_range = h.c["phm_init_range"].get<double>();
    }
    if (h.has("hypercomplex_nonlinearity") && h.c["hypercomplex_nonlinearity"] != "phm")
      out.weight_init = h.string("hypercomplex_nonlinearity");
  }
  out.name = j.contains("name") && j["name"].is_string() ? j["name"].get<std::string>() : "";
  out.model_name = j.value("model_name", nlohmann::json());
  if (j.contains("hidden_size") && j["hidden_size"].is_number_integer())
    out.hidden_size = j["hidden_size"];
  if (phm && !h.flag("learn_phm", true))
    out.notes.push_back(
        "learn_phm false: the file's A is kept (recorded as learn_phm true, so that it is saved)");
  if (h.has("dropout") && h.c["dropout"] != 0.0)
    out.notes.push_back(cat("config.dropout = ", h.c["dropout"].dump(),
                            " dropped: ours has no adapter dropout (it acts in training only)"));
  return out;
}

AdapterHubImportConfig adapterhub_import_config_from_text(const std::string& text,
                                                          const std::string& path) {
  return adapterhub_import_config(json_object_from_text(text, path), path);
}

}  // namespace compacter::interop

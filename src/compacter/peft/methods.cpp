// The method registry, attach(), merging and trainable-parameter accounting (spec §1.3, §7.1).
// Each method's record lives in its own file; this file lists them.
#include "compacter/peft/methods.h"

#include <torch/torch.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "compacter/core/error.h"
#include "compacter/io/hf_names.h"
#include "compacter/peft/adapter_config.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/adapter_methods.h"
#include "compacter/peft/bitfit.h"
#include "compacter/peft/full.h"
#include "compacter/peft/ia3.h"
#include "compacter/peft/lora.h"
#include "compacter/peft/prompt.h"
#include "compacter/peft/said.h"

namespace compacter::peft {

const std::vector<MethodInfo>& all_methods() {
  static const std::vector<MethodInfo> registry{
      full_method(),          // full.h
      adapter_method(),       // adapter_methods.h
      pfeiffer_method(),      // adapter_methods.h
      adapterdrop_method(),   // adapter_methods.h
      lowrank_method(),       // adapter_methods.h
      phm_method(),           // adapter_methods.h
      compacter_method(),     // adapter_methods.h
      compacter_pp_method(),  // adapter_methods.h
      bitfit_method(),        // bitfit.h
      prompt_r_method(),      // prompt.h
      prompt_t_method(),      // prompt.h
      said_method(),          // said.h
      lora_method(),          // lora.h
      ia3_method(),           // ia3.h
  };
  return registry;
}

const MethodInfo& find_method(const std::string& name) {
  for (const MethodInfo& m : all_methods())
    if (name == m.name) return m;
  std::ostringstream known;
  for (const MethodInfo& m : all_methods()) known << (known.tellp() > 0 ? ", " : "") << m.name;
  throw Error(cat("unknown method \"", name, "\" (known: ", known.str(), ")"));
}

PeftOptions method_defaults(const std::string& method) {
  PeftOptions o;
  find_method(method).defaults(o);
  return o;
}

std::vector<std::pair<std::string, nlohmann::json>> method_settings(const std::string& method,
                                                                    const PeftOptions& options) {
  const nlohmann::json all = options_to_json(options);
  std::vector<std::pair<std::string, nlohmann::json>> out;
  for (const std::string& name : find_method(method).settings) {
    check(all.contains(name), "method ", method, " lists an unknown option \"", name, "\"");
    out.emplace_back(name, all[name]);
  }
  return out;
}

std::vector<int64_t> parse_block_list(const std::string& text) {
  return block_list_from_text(text);
}

std::vector<std::string> parse_name_list(const std::string& text) {
  return name_list_from_text(text);
}

Attachment attach(const std::string& method, const PeftOptions& options, nn::T5ModelImpl& model,
                  uint64_t seed) {
  const MethodInfo& m = find_method(method);
  Attachment out = m.attach(options, model, seed);
  out.method = m.name;
  return out;
}

void freeze_all(nn::T5ModelImpl& model) {
  for (auto& p : model.parameters()) p.set_requires_grad(false);
}

void open_norms_and_head(nn::T5ModelImpl& model, const PeftOptions& o) {
  if (o.train_layer_norms)
    for (nn::RMSNormImpl* ln : model.layer_norms()) ln->weight.set_requires_grad(true);
  if (o.train_lm_head) model.lm_head->matrix().set_requires_grad(true);
}

void check_mergeable(const std::string& method) {
  const MethodInfo& m = find_method(method);
  check(static_cast<bool>(m.merge), "method ", m.name,
        " cannot be merged into the base weights: its tensors are not a change of T5's own "
        "weights (serve it as an adapter instead)");
}

nn::T5Model merge_into_base(nn::T5ModelImpl& model, const std::string& method) {
  check_mergeable(method);
  const MethodInfo& m = find_method(method);
  nn::T5Model plain(model.config(), false);
  {
    torch::NoGradGuard no_grad;
    const auto source = model.named_parameters(true);
    for (auto& item : plain->named_parameters(true)) {
      const torch::Tensor* from = source.find(item.key());
      check(from != nullptr, "merge: the model lacks T5 tensor \"", item.key(), "\"");
      item.value().set_data(from->detach().clone());
    }
  }
  for (auto& p : plain->parameters()) p.set_requires_grad(false);
  m.merge(model, *plain);
  plain->train(model.is_training());
  return plain;
}

std::vector<std::pair<std::string, torch::Tensor>> trainable_named_parameters(
    torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  std::set<const void*> seen;
  for (const auto& item : module.named_parameters())
    if (item.value().requires_grad() && seen.insert(item.value().unsafeGetTensorImpl()).second)
      out.emplace_back(item.key(), item.value());
  return out;
}

std::vector<torch::Tensor> trainable_parameters(torch::nn::Module& module) {
  std::vector<torch::Tensor> out;
  for (auto& [name, p] : trainable_named_parameters(module)) out.push_back(p);
  return out;
}

int64_t count_trainable(torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : trainable_parameters(module)) total += p.numel();
  return total;
}

int64_t count_parameters(torch::nn::Module& module) {
  int64_t total = 0;
  std::set<const void*> seen;
  for (const auto& p : module.parameters())
    if (seen.insert(p.unsafeGetTensorImpl()).second) total += p.numel();
  return total;
}

double ParameterBreakdown::total_for_tasks(int64_t tasks, bool full) const {
  if (full) return static_cast<double>(tasks);
  return 1.0 + static_cast<double>(tasks) * static_cast<double>(added) / backbone;
}

namespace {

std::set<std::string> t5_tensor_names(const nn::T5ModelImpl& model) {
  std::set<std::string> names;
  for (const HfTensorSpec& spec : hf_t5_tensors(model.config())) names.insert(spec.name);
  return names;
}

}  // namespace

ParameterBreakdown parameter_breakdown(nn::T5ModelImpl& model, const std::string& method) {
  const MethodInfo& m = find_method(method);
  const std::set<std::string> t5 = t5_tensor_names(model);
  ParameterBreakdown b;
  std::set<const void*> norms, finals, seen;
  for (nn::RMSNormImpl* ln : model.layer_norms()) norms.insert(ln->weight.unsafeGetTensorImpl());
  finals.insert(model.encoder->final_layer_norm->weight.unsafeGetTensorImpl());
  finals.insert(model.decoder->final_layer_norm->weight.unsafeGetTensorImpl());
  for (const auto& item : model.named_parameters()) {
    const torch::Tensor& p = item.value();
    if (!seen.insert(p.unsafeGetTensorImpl()).second) continue;
    const std::string& name = item.key();
    const int64_t size = p.numel();
    const TensorCategory category = m.category(name);
    const bool is_added = category != TensorCategory::kNone;
    check(is_added || t5.count(name), "tensor \"", name, "\" is neither T5's nor one of method ",
          m.name, "'s");
    if (!is_added) b.backbone += size;
    if (!p.requires_grad()) continue;
    b.trainable += size;
    if (is_added) b.added += size;
    switch (category) {
      case TensorCategory::kAdapterBias:
        b.adapter_biases += size;
        b.adapters += size;
        break;
      case TensorCategory::kAdapter:
        b.adapters += size;
        break;
      case TensorCategory::kSharedRule:
        b.shared_rule += size;
        break;
      case TensorCategory::kBias:
        b.biases += size;
        break;
      case TensorCategory::kPrompt:
        b.prompt += size;
        break;
      case TensorCategory::kIntrinsic:
        b.intrinsic += size;
        break;
      case TensorCategory::kNone:
        if (norms.count(p.unsafeGetTensorImpl())) {
          b.layer_norms += size;
          if (!finals.count(p.unsafeGetTensorImpl())) b.block_layer_norms += size;
        } else {
          b.backbone_trained += size;
        }
        break;
    }
  }
  return b;
}

ParameterBreakdown parameter_breakdown(nn::T5ModelImpl& model) {
  const std::set<std::string> t5 = t5_tensor_names(model);
  std::vector<std::string> others;
  for (const auto& item : model.named_parameters())
    if (!t5.count(item.key())) others.push_back(item.key());
  for (const MethodInfo& m : all_methods()) {
    bool covers = true;
    for (const std::string& name : others)
      if (m.category(name) == TensorCategory::kNone) {
        covers = false;
        break;
      }
    if (covers) return parameter_breakdown(model, m.name);
  }
  throw Error(cat("tensor \"", others.front(), "\" is neither T5's nor any one method's"));
}

}  // namespace compacter::peft

// Method table, attach() and trainable-parameter accounting (spec §1.3, §2, §3, §7.1).
#include "compacter/peft/methods.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "compacter/core/error.h"
#include "compacter/nn/layers.h"
#include "compacter/peft/bitfit.h"
#include "compacter/peft/prompt.h"
#include "compacter/peft/said.h"

namespace compacter::peft {

namespace {

void no_change(PeftOptions&) {}

void phm_adapter_defaults(PeftOptions& o) {  // spec §3.7: own A, full B, n = 12 (GLUE)
  o.n = 12;
  o.shared_phm_rule = false;
  o.factorized_phm = false;
}

void compacter_defaults(PeftOptions& o) {  // spec §3.8: shared A, rank-1 B, n = 4 (GLUE)
  o.n = 4;
  o.shared_phm_rule = true;
  o.factorized_phm = true;
  o.rank = 1;
  o.phm_c_init = "normal";
  o.phm_init_range = 1e-4;
}

void frozen_norms(PeftOptions& o) {  // bitfit, prompt tuning, SAID: T5's norms are not trained
  o.train_layer_norms = false;
}

void prompt_t_defaults(PeftOptions& o) {
  o.train_layer_norms = false;
  o.prompt_init = "vocab";
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

const std::vector<MethodInfo>& all_methods() {
  using K = ProjectionKind;
  using F = Family;
  static const std::vector<MethodInfo> table{
      {"full", "full fine-tuning: every T5 tensor (spec §3.13)", F::kFull, K::kDense, false, false,
       false, no_change},
      {"adapter", "Houlsby-style dense adapters after self-attention and feed-forward (48)",
       F::kAdapter, K::kDense, true, true, false, no_change},
      {"pfeiffer", "dense adapters after self-attention only (24)", F::kAdapter, K::kDense, true,
       false, false, no_change},
      {"adapterdrop", "dense adapters, none in blocks 0-4 of either stack (28)", F::kAdapter,
       K::kDense, true, true, true, no_change},
      {"lowrank", "rank-1 W = u v^T down/up projections (48)", F::kAdapter, K::kLowRank, true, true,
       false, no_change},
      {"phm", "PHM-Adapter: PHM layers with their own A and full B (48)", F::kAdapter, K::kPhm,
       true, true, false, phm_adapter_defaults},
      {"compacter", "LPHM layers, one shared A, rank-1 B (48)", F::kAdapter, K::kPhm, true, true,
       false, compacter_defaults},
      {"compacter++", "Compacter after the feed-forward sublayer only (24)", F::kAdapter, K::kPhm,
       false, true, false, compacter_defaults},
      {"bitfit", "zero biases added to every linear, block norm and the output layer (§3.10)",
       F::kBitFit, K::kDense, false, false, false, frozen_norms},
      {"prompt-r", "100 encoder prompt rows, U(-0.5, 0.5) init (§3.11)", F::kPrompt, K::kDense,
       false, false, false, frozen_norms},
      {"prompt-t", "100 encoder prompt rows copied from the vocabulary (§3.11)", F::kPrompt,
       K::kDense, false, false, false, prompt_t_defaults},
      {"said", "Intrinsic-SAID: d0 values through a Fastfood projection (§3.12)", F::kSaid,
       K::kDense, false, false, false, frozen_norms},
  };
  return table;
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

std::vector<int64_t> parse_block_list(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  std::string item;
  auto number = [&](const std::string& s) -> int64_t {
    check(!s.empty() && s.find_first_not_of("0123456789") == std::string::npos, "bad block list \"",
          text, "\": expected entries like 3 or 0-4 separated by commas");
    return std::stoll(s);
  };
  while (std::getline(in, item, ',')) {
    item.erase(std::remove(item.begin(), item.end(), ' '), item.end());
    if (item.empty()) continue;
    const auto dash = item.find('-');
    if (dash == std::string::npos) {
      out.push_back(number(item));
    } else {
      const int64_t lo = number(item.substr(0, dash)), hi = number(item.substr(dash + 1));
      check(lo <= hi, "bad block range \"", item, "\" in \"", text, "\"");
      for (int64_t b = lo; b <= hi; ++b) out.push_back(b);
    }
  }
  return out;
}

namespace {

Attachment attach_adapters(const MethodInfo& m, const PeftOptions& o, nn::T5ModelImpl& model,
                           uint64_t seed) {
  const std::string method = m.name;
  const int64_t d_model = model.config().d_model;
  check(o.reduction_factor >= 1, "reduction_factor must be positive, got ", o.reduction_factor);
  const int64_t d = d_model / o.reduction_factor;
  check(d >= 1, "bottleneck d = d_model / reduction_factor = ", d_model, " / ", o.reduction_factor,
        " is 0");

  nn::activation(o.non_linearity == "swish" ? "silu" : o.non_linearity, torch::zeros({1}));

  AdapterOptions ao;
  ao.d_model = d_model;
  ao.bottleneck = d;
  ao.kind = m.kind;
  ao.non_linearity = o.non_linearity;
  ao.layer_norm_before = o.layer_norm_before;
  ao.layer_norm_after = o.layer_norm_after;
  ao.rank = o.rank;
  ao.weight_init = parse_weight_init(o.weight_init);
  ao.phm.n = o.n;
  ao.phm.factorized = o.factorized_phm;
  ao.phm.rank = o.rank;
  ao.phm.learn_rule = o.learn_phm;
  ao.phm.rule_init = parse_rule_init(o.phm_c_init);
  ao.phm.weight_init = ao.weight_init;
  ao.phm.init_range = o.phm_init_range;
  if (m.kind == ProjectionKind::kPhm) {
    check(o.n >= 1, "PHM n must be positive, got ", o.n);
    check(d_model % o.n == 0 && d % o.n == 0, "method ", method, ": d_model = ", d_model,
          " and the bottleneck d = ", d, " must both be divisible by n = ", o.n);
  }
  if (m.kind != ProjectionKind::kDense || o.factorized_phm)
    check(o.rank >= 1, "rank must be positive, got ", o.rank);

  std::set<int64_t> dropped;
  const int64_t max_blocks = std::max(model.config().num_layers, model.config().decoder_layers());
  if (m.adapterdrop) {
    for (int64_t b : parse_block_list(o.adapterdrop_layers)) {
      check(b < max_blocks, "adapterdrop_layers: block ", b, " does not exist (the model has ",
            max_blocks, ")");
      dropped.insert(b);
    }
  }

  // Freeze the backbone, then open the T5 layer-norm scales (spec §1.3) and optionally lm_head.
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  if (o.train_layer_norms)
    for (nn::RMSNormImpl* ln : model.layer_norms()) ln->weight.set_requires_grad(true);
  if (o.train_lm_head) model.lm_head->matrix().set_requires_grad(true);

  const torch::Tensor& like = model.shared->weight;
  auto gen = at::detail::createCPUGenerator(seed);
  Attachment out;
  out.method = m.name;
  out.bottleneck = d;
  torch::Tensor rule;
  if (m.kind == ProjectionKind::kPhm && o.shared_phm_rule) {
    torch::Tensor a = make_shared_rule(o.n, ao.phm.rule_init, o.phm_init_range, gen)
                          .to(like.device(), like.scalar_type());
    rule = model.register_parameter("phm_rule", a, o.learn_phm);
    out.shared_rule = rule;
  }
  model.for_each_sublayer(
      [&](const std::string&, int64_t block, nn::HookSite site, nn::SublayerImpl& sublayer) {
        if (site == nn::HookSite::kCrossAttention) return;  // never after cross-attention (§0.1)
        if (site == nn::HookSite::kSelfAttention && !m.self_attention) return;
        if (site == nn::HookSite::kFeedForward && !m.feed_forward) return;
        if (dropped.count(block)) return;
        auto adapter = std::make_shared<AdapterImpl>(ao, gen, rule);
        adapter->to(like.device(), like.scalar_type());
        sublayer.set_output_hook("adapter", adapter);
        ++out.adapters;
      });
  return out;
}

}  // namespace

Attachment attach(const std::string& method, const PeftOptions& o, nn::T5ModelImpl& model,
                  uint64_t seed) {
  const MethodInfo& m = find_method(method);
  if (m.family == Family::kAdapter) return attach_adapters(m, o, model, seed);
  Attachment out;
  out.method = m.name;
  switch (m.family) {
    case Family::kFull:
      for (auto& p : model.parameters()) p.set_requires_grad(true);
      break;
    case Family::kBitFit:
      attach_bitfit(model, o.train_lm_head);
      break;
    case Family::kPrompt: {
      check(o.prompt_init == "random" || o.prompt_init == "vocab", "prompt_init must be random or ",
            "vocab, got \"", o.prompt_init, "\"");
      auto gen = at::detail::createCPUGenerator(seed);
      attach_prompt(model, o.prompt_length, o.prompt_init == "vocab", o.prompt_init_range, gen);
      break;
    }
    case Family::kSaid: {
      SaidOptions so;
      so.intrinsic_dim = o.intrinsic_dim;
      so.exact_gradient = o.said_exact_gradient;
      so.project_lm_head = o.said_project_lm_head;
      attach_said(model, so, seed);
      break;
    }
    case Family::kAdapter:
      break;
  }
  if (m.family != Family::kFull && o.train_layer_norms)
    for (nn::RMSNormImpl* ln : model.layer_norms()) ln->weight.set_requires_grad(true);
  if (m.family != Family::kFull && m.family != Family::kBitFit && o.train_lm_head)
    model.lm_head->matrix().set_requires_grad(true);
  return out;
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

ParameterBreakdown parameter_breakdown(nn::T5ModelImpl& model) {
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
    const bool adapter = name.find(".adapter.") != std::string::npos;
    const bool rule = name == "phm_rule";
    const bool prompt = name.rfind("encoder.prompt.", 0) == 0;
    const bool said = name.rfind("said.", 0) == 0;
    const bool bias = !adapter && ends_with(name, ".bias");  // T5 has none of its own
    const bool is_added = adapter || rule || prompt || said || bias;
    if (!is_added) b.backbone += size;
    if (!p.requires_grad()) continue;
    b.trainable += size;
    if (is_added) b.added += size;
    if (adapter) {
      b.adapters += size;
      if (ends_with(name, "_sampler.bias") || ends_with(name, "_sampler.b"))
        b.adapter_biases += size;
    } else if (rule) {
      b.shared_rule += size;
    } else if (prompt) {
      b.prompt += size;
    } else if (said) {
      b.intrinsic += size;
    } else if (bias) {
      b.biases += size;
    } else if (norms.count(p.unsafeGetTensorImpl())) {
      b.layer_norms += size;
      if (!finals.count(p.unsafeGetTensorImpl())) b.block_layer_norms += size;
    } else {
      b.backbone_trained += size;
    }
  }
  return b;
}

}  // namespace compacter::peft

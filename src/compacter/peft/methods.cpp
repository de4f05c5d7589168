// Method table, attach() and trainable-parameter accounting (spec §1.3, §2, §3.2-§3.9, §7.1).
#include "compacter/peft/methods.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "compacter/core/error.h"
#include "compacter/nn/layers.h"

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

}  // namespace

const std::vector<MethodInfo>& adapter_methods() {
  using K = ProjectionKind;
  static const std::vector<MethodInfo> table{
      {"adapter", "Houlsby-style dense adapters after self-attention and feed-forward (48)",
       K::kDense, true, true, false, no_change},
      {"pfeiffer", "dense adapters after self-attention only (24)", K::kDense, true, false, false,
       no_change},
      {"adapterdrop", "dense adapters, none in blocks 0-4 of either stack (28)", K::kDense, true,
       true, true, no_change},
      {"lowrank", "rank-1 W = u v^T down/up projections (48)", K::kLowRank, true, true, false,
       no_change},
      {"phm", "PHM-Adapter: PHM layers with their own A and full B (48)", K::kPhm, true, true,
       false, phm_adapter_defaults},
      {"compacter", "LPHM layers, one shared A, rank-1 B (48)", K::kPhm, true, true, false,
       compacter_defaults},
      {"compacter++", "Compacter after the feed-forward sublayer only (24)", K::kPhm, false, true,
       false, compacter_defaults},
  };
  return table;
}

const MethodInfo& find_method(const std::string& name) {
  for (const MethodInfo& m : adapter_methods())
    if (name == m.name) return m;
  std::ostringstream known;
  for (const MethodInfo& m : adapter_methods()) known << (known.tellp() > 0 ? ", " : "") << m.name;
  throw Error(cat("unknown adapter method \"", name, "\" (known: ", known.str(), ")"));
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

Attachment attach(const std::string& method, const PeftOptions& o, nn::T5ModelImpl& model,
                  uint64_t seed) {
  const MethodInfo& m = find_method(method);
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

std::vector<torch::Tensor> trainable_parameters(torch::nn::Module& module) {
  std::vector<torch::Tensor> out;
  std::set<const void*> seen;
  for (const auto& p : module.parameters())
    if (p.requires_grad() && seen.insert(p.unsafeGetTensorImpl()).second) out.push_back(p);
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

}  // namespace compacter::peft

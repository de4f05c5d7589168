// The adapter family's records and their attach (spec §1.3, §2, §3.2-§3.9, §9 #19).
#include "compacter/peft/adapter_methods.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "compacter/core/error.h"
#include "compacter/nn/layers.h"

namespace compacter::peft {

namespace {

// Where a family member puts its adapters and how it builds their projections.
struct Placement {
  ProjectionKind kind = ProjectionKind::kDense;
  bool self_attention = true;  // adapter after self-attention
  bool feed_forward = true;    // adapter after the feed-forward sublayer
  bool adapterdrop = false;    // blocks listed in adapterdrop_layers get none
};

Attachment attach_adapters(const std::string& method, const Placement& m, const PeftOptions& o,
                           nn::T5ModelImpl& model, uint64_t seed) {
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
  freeze_all(model);
  open_norms_and_head(model, o);

  const torch::Tensor& like = model.shared->weight;
  auto gen = at::detail::createCPUGenerator(seed);
  Attachment out;
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

// Adapter tensors live under a sublayer's "adapter" hook; the shared A is "phm_rule".
TensorCategory adapter_category(const std::string& name) {
  if (name == "phm_rule") return TensorCategory::kSharedRule;
  if (name.find(".adapter.") == std::string::npos) return TensorCategory::kNone;
  for (const std::string tail : {"_sampler.bias", "_sampler.b"})
    if (name.size() >= tail.size() &&
        name.compare(name.size() - tail.size(), tail.size(), tail) == 0)
      return TensorCategory::kAdapterBias;
  return TensorCategory::kAdapter;
}

const std::vector<std::string> kDenseSettings{"reduction_factor",  "non_linearity",
                                              "layer_norm_before", "layer_norm_after",
                                              "train_layer_norms", "train_lm_head"};
const std::vector<std::string> kLowRankSettings{"reduction_factor",  "rank",
                                                "weight_init",       "non_linearity",
                                                "layer_norm_before", "layer_norm_after",
                                                "train_layer_norms", "train_lm_head"};
const std::vector<std::string> kPhmSettings{"reduction_factor",
                                            "n",
                                            "rank",
                                            "shared_phm_rule",
                                            "factorized_phm",
                                            "learn_phm",
                                            "phm_c_init",
                                            "phm_init_range",
                                            "weight_init",
                                            "non_linearity",
                                            "layer_norm_before",
                                            "layer_norm_after",
                                            "train_layer_norms",
                                            "train_lm_head"};

MethodInfo family_member(const char* name, const char* summary, const Placement& placement,
                         std::vector<std::string> settings) {
  MethodInfo m;
  m.name = name;
  m.summary = summary;
  m.settings = std::move(settings);
  m.attach = [name, placement](const PeftOptions& o, nn::T5ModelImpl& model, uint64_t seed) {
    return attach_adapters(name, placement, o, model, seed);
  };
  m.category = adapter_category;
  return m;
}

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

MethodInfo adapter_method() {
  return family_member("adapter",
                       "Houlsby-style dense adapters after self-attention and feed-forward (48)",
                       {ProjectionKind::kDense, true, true, false}, kDenseSettings);
}

MethodInfo pfeiffer_method() {
  return family_member("pfeiffer", "dense adapters after self-attention only (24)",
                       {ProjectionKind::kDense, true, false, false}, kDenseSettings);
}

MethodInfo adapterdrop_method() {
  std::vector<std::string> settings = kDenseSettings;
  settings.push_back("adapterdrop_layers");
  return family_member("adapterdrop", "dense adapters, none in blocks 0-4 of either stack (28)",
                       {ProjectionKind::kDense, true, true, true}, settings);
}

MethodInfo lowrank_method() {
  return family_member("lowrank", "rank-1 W = u v^T down/up projections (48)",
                       {ProjectionKind::kLowRank, true, true, false}, kLowRankSettings);
}

MethodInfo phm_method() {
  MethodInfo m = family_member("phm", "PHM-Adapter: PHM layers with their own A and full B (48)",
                               {ProjectionKind::kPhm, true, true, false}, kPhmSettings);
  m.defaults = phm_adapter_defaults;
  return m;
}

MethodInfo compacter_method() {
  MethodInfo m = family_member("compacter", "LPHM layers, one shared A, rank-1 B (48)",
                               {ProjectionKind::kPhm, true, true, false}, kPhmSettings);
  m.defaults = compacter_defaults;
  return m;
}

MethodInfo compacter_pp_method() {
  MethodInfo m = family_member("compacter++", "Compacter after the feed-forward sublayer only (24)",
                               {ProjectionKind::kPhm, false, true, false}, kPhmSettings);
  m.defaults = compacter_defaults;
  return m;
}

}  // namespace compacter::peft

// (IA)^3: attach through T5's scale points, merge, and its record (Liu et al., 2022; Hugging
// Face PEFT's placement for T5).
#include "compacter/peft/ia3.h"

#include <torch/torch.h>

#include <set>

#include "compacter/core/error.h"

namespace compacter::peft {

namespace {

std::set<std::string> ia3_targets(const std::string& text) {
  std::set<std::string> out;
  for (const std::string& name : parse_name_list(text)) {
    check(name == "k" || name == "v" || name == "wo" || name == "wi_1", "ia3 target_modules: \"",
          name,
          "\" is not supported (expected some of k, v, wo, wi_1: the keys, the values and the ",
          "feed-forward hidden activation)");
    out.insert(name);
  }
  check(!out.empty(), "ia3 target_modules is empty (expected some of k, v, wo, wi_1, e.g. k,v,wo)");
  check(!(out.count("wo") && out.count("wi_1")),
        "ia3 target_modules: wo and wi_1 both scale the feed-forward hidden activation; give one");
  return out;
}

// Registers "ia3_l" of `shape` (ones) on `linear` and returns it.
torch::Tensor add_vector(nn::LinearImpl& linear, std::vector<int64_t> shape,
                         const torch::Tensor& like) {
  return linear.register_parameter("ia3_l", torch::ones(shape, like.options()));
}

Attachment attach_ia3(const PeftOptions& o, nn::T5ModelImpl& model, uint64_t) {
  const std::set<std::string> targets = ia3_targets(o.target_modules);
  const bool gated = model.config().is_gated();
  check(!targets.count("wi_1") || gated,
        "ia3 target_modules: wi_1 exists only in a gated feed-forward (this model has wi; use wo)");
  model.for_each_attention([&](const std::string& path, nn::T5AttentionImpl& attention) {
    check(!attention.key_scale.defined() && !attention.value_scale.defined(), path,
          " already has a key or value scale (is a method attached?)");
  });
  model.for_each_feed_forward([&](const std::string& path, nn::T5DenseImpl& ff) {
    check(!ff.hidden_scale.defined(), path, " already has a hidden scale (is a method attached?)");
  });

  freeze_all(model);
  open_norms_and_head(model, o);
  const torch::Tensor& like = model.shared->weight;
  model.for_each_attention([&](const std::string&, nn::T5AttentionImpl& attention) {
    if (targets.count("k"))
      attention.key_scale = add_vector(*attention.k, {attention.k->out_features(), 1}, like);
    if (targets.count("v"))
      attention.value_scale = add_vector(*attention.v, {attention.v->out_features(), 1}, like);
  });
  model.for_each_feed_forward([&](const std::string&, nn::T5DenseImpl& ff) {
    if (targets.count("wo")) ff.hidden_scale = add_vector(*ff.wo, {1, ff.wo->in_features()}, like);
    if (targets.count("wi_1"))
      ff.hidden_scale = add_vector(*ff.wi_1, {ff.wi_1->out_features(), 1}, like);
  });
  return Attachment{};
}

void merge_ia3(nn::T5ModelImpl& adapted, nn::T5ModelImpl& plain) {
  torch::NoGradGuard no_grad;
  auto weights = plain.named_parameters(true);
  adapted.for_each_linear([&](const std::string& path, nn::LinearImpl& linear) {
    const torch::Tensor* vector = linear.named_parameters(false).find("ia3_l");
    if (!vector) return;
    torch::Tensor* w = weights.find(path + ".weight");
    check(w != nullptr, "merge: no T5 weight \"", path, ".weight\"");
    w->mul_(vector->detach().to(w->device(), w->scalar_type()));  // [out, 1] rows, [1, in] columns
  });
}

}  // namespace

MethodInfo ia3_method() {
  MethodInfo m;
  m.name = "ia3";
  m.summary = "(IA)3: learned scales on keys, values and the feed-forward activation (PEFT's)";
  m.defaults = [](PeftOptions& o) {
    o.train_layer_norms = false;
    o.target_modules = "k,v,wo";
  };
  m.settings = {"train_layer_norms", "train_lm_head", "target_modules"};
  m.attach = attach_ia3;
  m.category = [](const std::string& name) {
    const std::string tail = ".ia3_l";
    const bool mine = name.size() >= tail.size() &&
                      name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
    return mine ? TensorCategory::kAdapter : TensorCategory::kNone;
  };
  m.task_prefix = true;
  m.merge = merge_ia3;
  return m;
}

}  // namespace compacter::peft

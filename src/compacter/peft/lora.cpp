// LoRA: factors, hook, attach, merge and its record (Hu et al., 2021; Hugging Face PEFT's Linear).
#include "compacter/peft/lora.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <set>

#include "compacter/core/error.h"
#include "compacter/nn/dropout.h"
#include "compacter/nn/linear_kernel.h"

namespace compacter::peft {

LoraFactorImpl::LoraFactorImpl(torch::Tensor initial) {
  weight = register_parameter("weight", std::move(initial));
}

LoraHookImpl::LoraHookImpl(LoraFactor A_, LoraFactor B_, double scaling_, double dropout_)
    : A(std::move(A_)), B(std::move(B_)), scaling(scaling_), dropout(dropout_) {}

torch::Tensor LoraHookImpl::forward(const torch::Tensor& x) {
  const torch::Tensor h = dropout > 0.0 ? nn::dropout(x, dropout, is_training()) : x;
  return nn::linear(nn::linear(h, A->weight, {}), B->weight, {}) * scaling;
}

torch::Tensor LoraHookImpl::delta_weight() const {
  torch::Tensor a = A->weight.detach(), b = B->weight.detach();
  const bool half = a.scalar_type() == torch::kBFloat16 || a.scalar_type() == torch::kHalf;
  if (half) {  // as PEFT: half-precision factors are multiplied in fp32
    a = a.to(torch::kFloat32);
    b = b.to(torch::kFloat32);
  }
  return torch::mm(b, a) * scaling;
}

namespace {

const std::vector<std::string> kLoraTargets{"q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"};

std::set<std::string> lora_targets(const std::string& text) {
  std::set<std::string> out;
  for (const std::string& name : parse_name_list(text)) {
    bool known = false;
    for (const std::string& t : kLoraTargets) known = known || t == name;
    check(known, "lora target_modules: unknown module \"", name,
          "\" (expected some of q, k, v, o, wi, wi_0, wi_1, wo)");
    out.insert(name);
  }
  check(!out.empty(), "lora target_modules is empty (expected some of q, k, v, o, wi, wi_0, wi_1, ",
        "wo, e.g. q,v)");
  return out;
}

std::string last_component(const std::string& path) {
  return path.substr(path.rfind('.') + 1);
}

Attachment attach_lora(const PeftOptions& o, nn::T5ModelImpl& model, uint64_t seed) {
  check(o.rank >= 1, "LoRA rank (r) must be positive, got ", o.rank);
  check(o.lora_dropout >= 0.0 && o.lora_dropout < 1.0, "lora_dropout must be in [0, 1), got ",
        o.lora_dropout);
  const std::set<std::string> targets = lora_targets(o.target_modules);
  std::set<std::string> matched;
  model.for_each_linear([&](const std::string& path, nn::LinearImpl& linear) {
    const std::string name = last_component(path);
    if (!targets.count(name)) return;
    matched.insert(name);
    check(!linear.hook(), path, " already has a hook (is a method attached?)");
  });
  for (const std::string& t : targets)
    check(matched.count(t), "lora target_modules: \"", t,
          "\" matches no linear layer of this model (a gated feed-forward has wi_0 and wi_1, ",
          "the other wi)");

  freeze_all(model);
  open_norms_and_head(model, o);
  const torch::Tensor& like = model.shared->weight;
  auto gen = at::detail::createCPUGenerator(seed);
  const double scaling = o.lora_alpha / static_cast<double>(o.rank);
  model.for_each_linear([&](const std::string& path, nn::LinearImpl& linear) {
    if (!targets.count(last_component(path))) return;
    const int64_t in = linear.in_features(), out = linear.out_features();
    // kaiming_uniform_(a = sqrt(5)) on [r, in]: gain sqrt(2 / (1 + 5)), bound gain sqrt(3 / in).
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    torch::Tensor a = torch::empty({o.rank, in}).uniform_(-bound, bound, gen);
    LoraFactor A =
        linear.register_module("lora_A", LoraFactor(a.to(like.device(), like.scalar_type())));
    LoraFactor B =
        linear.register_module("lora_B", LoraFactor(torch::zeros({out, o.rank}, like.options())));
    A->weight.set_requires_grad(true);
    B->weight.set_requires_grad(true);
    linear.set_hook("lora", LoraHook(A, B, scaling, o.lora_dropout).ptr());
  });
  return Attachment{};
}

void merge_lora(nn::T5ModelImpl& adapted, nn::T5ModelImpl& plain) {
  torch::NoGradGuard no_grad;
  auto weights = plain.named_parameters(true);
  adapted.for_each_linear([&](const std::string& path, nn::LinearImpl& linear) {
    auto hook = std::dynamic_pointer_cast<LoraHookImpl>(linear.hook());
    if (!hook) return;
    torch::Tensor* w = weights.find(path + ".weight");
    check(w != nullptr, "merge: no T5 weight \"", path, ".weight\"");
    w->add_(hook->delta_weight().to(w->device(), w->scalar_type()));
  });
}

}  // namespace

MethodInfo lora_method() {
  MethodInfo m;
  m.name = "lora";
  m.summary = "LoRA: W + (alpha / r) B A on q, v of every attention (Hugging Face PEFT's)";
  m.defaults = [](PeftOptions& o) {
    o.rank = 8;
    o.train_layer_norms = false;
    o.lora_alpha = 16.0;
    o.lora_dropout = 0.0;
    o.target_modules = "q,v";
  };
  m.settings = {"rank",       "train_layer_norms", "train_lm_head",
                "lora_alpha", "lora_dropout",      "target_modules"};
  m.attach = attach_lora;
  m.category = [](const std::string& name) {
    const bool mine =
        name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
    return mine ? TensorCategory::kAdapter : TensorCategory::kNone;
  };
  m.task_prefix = true;
  m.merge = merge_lora;
  return m;
}

}  // namespace compacter::peft

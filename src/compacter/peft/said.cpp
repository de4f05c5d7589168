// Intrinsic-SAID with the Fastfood projection (spec §3.12; 20,000 trainable values at d0 = 20K).
#include "compacter/peft/said.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <set>

#include "compacter/core/error.h"

namespace compacter::peft {

namespace {

class ScaleGradient : public torch::autograd::Function<ScaleGradient> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               double scale) {
    ctx->saved_data["scale"] = scale;
    return x.view_as(x);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    return {grads[0] * ctx->saved_data["scale"].toDouble(), torch::Tensor()};
  }
};

int64_t next_power_of_two(int64_t n) {
  int64_t l = 1;
  while (l < n) l *= 2;
  return l;
}

}  // namespace

torch::Tensor fwht(const torch::Tensor& x) {
  const int64_t length = x.size(0);
  check(length > 0 && (length & (length - 1)) == 0, "fwht: length ", length,
        " is not a power of two");
  torch::Tensor y = x;
  for (int64_t h = 1; h < length; h *= 2) {
    torch::Tensor v = y.reshape({length / (2 * h), 2, h});
    torch::Tensor a = v.select(1, 0), b = v.select(1, 1);
    y = torch::stack({a + b, a - b}, 1).reshape({length});
  }
  return y;
}

torch::Tensor scale_gradient(const torch::Tensor& x, double scale) {
  return ScaleGradient::apply(x, scale);
}

SaidImpl::SaidImpl(nn::T5ModelImpl& model, const SaidOptions& options, uint64_t seed)
    : options_(options), seed_(seed) {
  // Every backbone tensor once (the tied output layer is the embedding), in named order.
  std::set<const void*> seen;
  auto add = [&](const std::string& name, torch::Tensor* slot) {
    if (!slot->defined() || !seen.insert(slot->unsafeGetTensorImpl()).second) return;
    Target t;
    t.name = name;
    t.slot = slot;
    t.initial = *slot;
    targets_.push_back(std::move(t));
  };
  for (const auto& item : model.named_modules("", false)) {
    torch::nn::Module* m = item.value().get();
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    if (auto* linear = dynamic_cast<nn::LinearImpl*>(m)) {
      add(prefix + "weight", &linear->weight);
      add(prefix + "bias", &linear->bias);
    } else if (auto* norm = dynamic_cast<nn::RMSNormImpl*>(m)) {
      add(prefix + "weight", &norm->weight);
      add(prefix + "bias", &norm->bias);
    } else if (auto* table = dynamic_cast<nn::EmbeddingTableImpl*>(m)) {
      add(prefix + "weight", &table->weight);
    } else if (auto* head = dynamic_cast<nn::LMHeadImpl*>(m)) {
      add(prefix + "weight", &head->weight);
      add(prefix + "bias", &head->bias);
    }
  }
  const int64_t m = static_cast<int64_t>(targets_.size());
  check(options.intrinsic_dim > m + 1, "intrinsic_dim (d0) = ", options.intrinsic_dim,
        " must exceed the ", m + 1, " scaling factors lambda of this model");
  // The tied output layer keeps a handle on theta0 (quirk) unless asked to follow.
  if (!options.project_lm_head && !model.lm_head->weight.defined())
    model.lm_head->weight = model.shared->weight;

  const torch::Tensor& like = model.shared->weight;
  for (Target& t : targets_) t.initial.set_requires_grad(false);
  theta = register_parameter("theta_d", torch::zeros({options.intrinsic_dim - (m + 1)},
                                                     like.options().requires_grad(false)));
  lambda = register_parameter("lambda", torch::ones({m + 1}, like.options()));
}

void SaidImpl::draw_constants() {
  auto gen = at::detail::createCPUGenerator(seed_);
  const torch::Tensor& like = theta;
  for (Target& t : targets_) {
    const int64_t size = t.initial.numel();
    t.length = next_power_of_two(size);
    auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
    t.signs = torch::randint(0, 2, {t.length}, gen, f32) * 2 - 1;
    t.perm = torch::randperm(t.length, gen, torch::TensorOptions().dtype(torch::kLong));
    t.gauss = torch::randn({t.length}, gen, f32);
    t.divisor = t.gauss.norm().item<double>() * std::sqrt(static_cast<double>(size));
    t.signs = t.signs.to(like.device(), like.scalar_type());
    t.gauss = t.gauss.to(like.device(), like.scalar_type());
    t.perm = t.perm.to(like.device());
  }
  drawn_ = true;
}

void SaidImpl::apply() {
  if (!drawn_) draw_constants();
  const int64_t d = theta.size(0);
  for (size_t j = 0; j < targets_.size(); ++j) {
    Target& t = targets_[j];
    torch::Tensor x = t.length <= d ? theta.narrow(0, 0, t.length)
                                    : torch::constant_pad_nd(theta, {0, t.length - d});
    const double g = options_.exact_gradient ? 1.0 : 1.0 / std::sqrt(static_cast<double>(t.length));
    torch::Tensor u = scale_gradient(fwht(t.signs * x), g).index_select(0, t.perm);
    torch::Tensor v = scale_gradient(fwht(t.gauss * u), g);
    torch::Tensor delta = v.narrow(0, 0, t.initial.numel()).view(t.initial.sizes()) / t.divisor;
    *t.slot = t.initial + lambda[static_cast<int64_t>(j) + 1] * delta;
  }
}

Said attach_said(nn::T5ModelImpl& model, const SaidOptions& options, uint64_t seed) {
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  Said said(model, options, seed);
  model.register_module("said", said);
  said->theta.set_requires_grad(true);
  said->lambda.set_requires_grad(true);
  model.before_forward = [raw = said.get()] { raw->apply(); };
  return said;
}

}  // namespace compacter::peft

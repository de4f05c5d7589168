// Intrinsic-SAID with the Fastfood projection (spec §3.12; 20,000 trainable values at d0 = 20K).
#include "compacter/peft/said.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include "compacter/core/error.h"

namespace compacter::peft {

namespace {

int64_t next_power_of_two(int64_t n) {
  int64_t l = 1;
  while (l < n) l *= 2;
  return l;
}

// H_64 as a matrix in x's dtype and device, Sylvester order: H[i][j] = (-1)^popcount(i & j).
// Its top-left k x k block is H_k. Built once per dtype and device.
torch::Tensor hadamard64(const torch::TensorOptions& options) {
  static std::mutex mutex;
  static std::map<std::pair<int, std::string>, torch::Tensor> cache;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto key =
      std::make_pair(static_cast<int>(options.dtype().toScalarType()), options.device().str());
  auto it = cache.find(key);
  if (it == cache.end()) {
    const torch::Tensor h2 = torch::tensor({1.0, 1.0, 1.0, -1.0}, torch::kDouble).view({2, 2});
    torch::Tensor h = torch::ones({1, 1}, torch::kDouble);
    for (int b = 0; b < 6; ++b) h = torch::kron(h2, h);
    it = cache.emplace(key, h.to(options)).first;
  }
  return it->second;
}

// The unnormalised transform of x [L], without autograd. H_L is the Kronecker product of one H_2
// per index bit, so it is applied to groups of up to 6 bits at a time: view the vector as
// [L / k, k], multiply by H_k (one GEMM; the lowest bits), and transpose to [k, L / k], which
// rotates the index bits so that the next group becomes the lowest. After all log2(L) bits the
// rotations add up to the identity. About log2(L) / 6 GEMMs and copies instead of log2(L)
// passes. Autocast is kept out: the transform stays in x's dtype.
torch::Tensor fwht_blocks(const torch::Tensor& x) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const int64_t length = x.size(0);
  int64_t bits = 0;
  while ((int64_t{1} << bits) < length) ++bits;
  const torch::Tensor h64 = hadamard64(x.options());
  torch::Tensor y = x.contiguous();
  for (int64_t done = 0; done < bits;) {
    const int64_t b = std::min<int64_t>(6, bits - done);
    const int64_t k = int64_t{1} << b;
    const torch::Tensor h = h64.narrow(0, 0, k).narrow(1, 0, k);  // symmetric
    y = torch::mm(y.view({length / k, k}), h).t().contiguous().view({length});
    done += b;
  }
  return y;
}

// y = H x; the backward is H grad (H is symmetric), times grad_scale. Nothing is saved.
class Fwht : public torch::autograd::Function<Fwht> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               double grad_scale) {
    ctx->saved_data["scale"] = grad_scale;
    return fwht_blocks(x);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const double scale = ctx->saved_data["scale"].toDouble();
    torch::Tensor g = fwht_blocks(grads[0]);
    return {scale == 1.0 ? g : g * scale, torch::Tensor()};
  }
};

// H_L applied to x [k] zero-padded to L (k a power of two, k <= L). The padded vector is
// e_0 (x) x in H_L = H_{L/k} (x) H_k, so H_L x = H_k x repeated L / k times; the backward sums
// the L / k slices of the gradient and applies H_k.
class TiledFwht : public torch::autograd::Function<TiledFwht> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               int64_t length, double grad_scale) {
    ctx->saved_data["scale"] = grad_scale;
    ctx->saved_data["k"] = x.size(0);
    return fwht_blocks(x).repeat({length / x.size(0)});
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t k = ctx->saved_data["k"].toInt();
    torch::Tensor g = fwht_blocks(grads[0].reshape({-1, k}).sum(0));
    return {scale == 1.0 ? g : g * scale, torch::Tensor(), torch::Tensor()};
  }
};

// y = x[perm]; the backward is grad[inverse] (a gather, where index_select's own backward is a
// scatter into zeros).
class Permute : public torch::autograd::Function<Permute> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& perm, const torch::Tensor& inverse) {
    ctx->saved_data["inverse"] = inverse;
    return x.index_select(0, perm);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    return {grads[0].index_select(0, ctx->saved_data["inverse"].toTensor()), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::Tensor fwht(const torch::Tensor& x) {
  const int64_t length = x.size(0);
  check(length > 0 && (length & (length - 1)) == 0, "fwht: length ", length,
        " is not a power of two");
  return Fwht::apply(x, 1.0);
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
    // G_j / (||G_j|| sqrt(D_j)): the normalisation folded into the diagonal.
    t.gauss = t.gauss / (t.gauss.norm().item<double>() * std::sqrt(static_cast<double>(size)));
    t.inverse =
        torch::empty_like(t.perm).scatter_(0, t.perm, torch::arange(t.length, t.perm.options()));
    t.perm = t.perm.to(like.device(), torch::kInt);  // int32 indices: half the memory
    t.inverse = t.inverse.to(like.device(), torch::kInt);
    // Only the first min(L_j, 2^ceil(log2 d)) signs meet nonzero entries of theta_d (apply()).
    const int64_t used = std::min(t.length, next_power_of_two(theta.size(0)));
    t.signs = t.signs.narrow(0, 0, used).to(like.device(), like.scalar_type()).clone();
    t.gauss = t.gauss.to(like.device(), like.scalar_type());
  }
  drawn_ = true;
}

void SaidImpl::apply() {
  if (!drawn_) draw_constants();
  const int64_t d = theta.size(0);
  for (size_t j = 0; j < targets_.size(); ++j) {
    Target& t = targets_[j];
    const double g = options_.exact_gradient ? 1.0 : 1.0 / std::sqrt(static_cast<double>(t.length));
    torch::Tensor u;
    if (t.length <= d) {
      u = Fwht::apply(t.signs * theta.narrow(0, 0, t.length), g);
    } else {  // theta_d zero-padded to L: only its first k = 2^ceil(log2 d) entries can be nonzero
      const int64_t k = next_power_of_two(d);
      u = TiledFwht::apply(t.signs.narrow(0, 0, k) * torch::constant_pad_nd(theta, {0, k - d}),
                           t.length, g);
    }
    torch::Tensor v = Fwht::apply(t.gauss * Permute::apply(u, t.perm, t.inverse), g);
    torch::Tensor delta = v.narrow(0, 0, t.initial.numel()).view(t.initial.sizes());
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

MethodInfo said_method() {
  MethodInfo m;
  m.name = "said";
  m.summary = "Intrinsic-SAID: d0 values through a Fastfood projection (§3.12)";
  m.defaults = [](PeftOptions& o) { o.train_layer_norms = false; };
  m.settings = {"train_layer_norms", "train_lm_head", "intrinsic_dim", "said_exact_gradient",
                "said_project_lm_head"};
  m.attach = [](const PeftOptions& o, nn::T5ModelImpl& model, uint64_t seed) {
    SaidOptions so;
    so.intrinsic_dim = o.intrinsic_dim;
    so.exact_gradient = o.said_exact_gradient;
    so.project_lm_head = o.said_project_lm_head;
    attach_said(model, so, seed);
    open_norms_and_head(model, o);
    return Attachment{};
  };
  m.category = [](const std::string& name) {
    return name.rfind("said.", 0) == 0 ? TensorCategory::kIntrinsic : TensorCategory::kNone;
  };
  m.task_prefix = true;
  m.rewrites_backbone = true;
  return m;
}

}  // namespace compacter::peft

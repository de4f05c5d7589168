// PHM / LPHM layer (paper eq. (3)-(5); spec §3.6 shapes, forward, inits; §9 #9, #10).
#include "compacter/peft/phm.h"

#include <torch/torch.h>

#include <cmath>

#include "compacter/core/error.h"
#include "compacter/nn/batched_matmul.h"
#include "compacter/nn/linear_kernel.h"

namespace compacter::peft {

WeightInit parse_weight_init(const std::string& name) {
  if (name == "glorot-uniform") return WeightInit::kGlorotUniform;
  if (name == "glorot-normal") return WeightInit::kGlorotNormal;
  if (name == "normal") return WeightInit::kNormal;
  throw Error(
      cat("unknown weight init \"", name, "\" (expected glorot-uniform, glorot-normal or normal)"));
}

RuleInit parse_rule_init(const std::string& name) {
  if (name == "normal") return RuleInit::kNormal;
  if (name == "uniform") return RuleInit::kUniform;
  throw Error(cat("unknown phm_c_init \"", name, "\" (expected normal or uniform)"));
}

const char* weight_init_name(WeightInit init) {
  switch (init) {
    case WeightInit::kGlorotUniform:
      return "glorot-uniform";
    case WeightInit::kGlorotNormal:
      return "glorot-normal";
    case WeightInit::kNormal:
      return "normal";
  }
  return "?";
}

const char* rule_init_name(RuleInit init) {
  return init == RuleInit::kNormal ? "normal" : "uniform";
}

torch::Tensor kronecker(const torch::Tensor& a, const torch::Tensor& b) {
  check(a.dim() >= 2 && a.dim() == b.dim(), "kronecker: operands need the same rank >= 2, got ",
        a.dim(), " and ", b.dim());
  const int64_t p = a.size(-2), q = a.size(-1), r = b.size(-2), s = b.size(-1);
  // [..., p, 1, q, 1] * [..., 1, r, 1, s] -> [..., p, r, q, s] -> [..., p*r, q*s]
  torch::Tensor prod = a.unsqueeze(-1).unsqueeze(-3) * b.unsqueeze(-2).unsqueeze(-4);
  std::vector<int64_t> shape(prod.sizes().begin(), prod.sizes().end() - 4);
  shape.push_back(p * r);
  shape.push_back(q * s);
  return prod.reshape(shape);
}

torch::Tensor phm_weight(const torch::Tensor& rule, const torch::Tensor& B) {
  const int64_t n = rule.size(0), P = B.size(1), Q = B.size(2);
  check(rule.dim() == 3 && rule.size(1) == n && rule.size(2) == n && B.dim() == 3 && B.size(0) == n,
        "phm_weight: rule must be [n, n, n] and B [n, P, Q]");
  // H[a*P + p, c*Q + q] = sum_i A_i[a, c] B_i[p, q]: one product over i, [a c, i] (a view of the
  // rule) by [i, p q], its (a, c, p, q) then reordered to (a, p, c, q); no n x in x out temporary.
  // Through nn::batched_matmul, which under bf16 autocast rounds as autocast rounds a product
  // (libtorch 1.13 runs its own bf16 bmm, forward and backward, through a loop over the matrices
  // on the CPU: README, "Issue #8's CPU targets").
  const torch::Tensor lhs = rule.permute({1, 2, 0}).reshape({1, n * n, n});
  const torch::Tensor rhs = B.reshape({1, n, P * Q});
  return nn::batched_matmul(lhs, rhs)
      .view({n, n, P, Q})
      .permute({0, 2, 1, 3})
      .reshape({n * P, n * Q});
}

void init_slices(torch::Tensor& t, WeightInit init, double init_range, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  if (init == WeightInit::kNormal) {
    t.normal_(0.0, init_range, gen);
    return;
  }
  check(t.dim() == 2 || t.dim() == 3, "init_slices: expected a 2-D or 3-D tensor");
  const double fan_in = static_cast<double>(t.size(-1)), fan_out = static_cast<double>(t.size(-2));
  const double gain = std::sqrt(2.0);
  auto fill = [&](torch::Tensor slice) {
    if (init == WeightInit::kGlorotUniform) {
      const double a = gain * std::sqrt(6.0 / (fan_in + fan_out));
      slice.uniform_(-a, a, gen);
    } else {
      slice.normal_(0.0, gain * std::sqrt(2.0 / (fan_in + fan_out)), gen);
    }
  };
  if (t.dim() == 2) {
    fill(t);
  } else {
    for (int64_t i = 0; i < t.size(0); ++i) fill(t[i]);
  }
}

torch::Tensor make_shared_rule(int64_t n, RuleInit init, double init_range, at::Generator& gen) {
  check(n >= 1, "PHM n must be positive, got ", n);
  torch::Tensor a = torch::empty({n, n, n});
  if (init == RuleInit::kNormal) {
    a.normal_(0.0, init_range, gen);
  } else {
    a.uniform_(-1.0, 1.0, gen);
  }
  return a;
}

PhmLinearImpl::PhmLinearImpl(int64_t in, int64_t out, const PhmOptions& o, at::Generator& gen,
                             torch::Tensor shared_rule)
    : shared_rule_(std::move(shared_rule)), n_(o.n) {
  check(o.n >= 1, "PHM n must be positive, got ", o.n);
  check(in % o.n == 0 && out % o.n == 0, "PHM layer ", in, " -> ", out,
        ": input and output sizes must be divisible by n = ", o.n);
  check(!o.factorized || o.rank >= 1, "PHM rank must be positive, got ", o.rank);
  const int64_t P = in / o.n, Q = out / o.n;
  if (shared_rule_.defined()) {
    check(shared_rule_.dim() == 3 && shared_rule_.size(0) == o.n && shared_rule_.size(1) == o.n &&
              shared_rule_.size(2) == o.n,
          "shared PHM rule must have shape [", o.n, ", ", o.n, ", ", o.n, "]");
  } else {
    // Per-layer A: sigma / bound fixed at 0.01, whatever init_range says (spec §3.6, §9 #9).
    torch::Tensor a = torch::empty({o.n, o.n, o.n});
    if (o.rule_init == RuleInit::kNormal) {
      a.normal_(0.0, 0.01, gen);
    } else {
      a.uniform_(-0.01, 0.01, gen);
    }
    phm_rule = register_parameter("phm_rule", a, o.learn_rule);
  }
  if (o.factorized) {
    torch::Tensor left = torch::empty({o.n, P, o.rank}), right = torch::empty({o.n, o.rank, Q});
    init_slices(left, o.weight_init, o.init_range, gen);
    init_slices(right, o.weight_init, o.init_range, gen);
    W_left = register_parameter("W_left", left);
    W_right = register_parameter("W_right", right);
  } else {
    torch::Tensor w = torch::empty({o.n, P, Q});
    init_slices(w, o.weight_init, o.init_range, gen);
    W = register_parameter("W", w);
  }
  b = register_parameter("b", torch::zeros({out}));
}

torch::Tensor PhmLinearImpl::B() const {
  return W.defined() ? W : nn::batched_matmul(W_left, W_right);
}

torch::Tensor PhmLinearImpl::weight() const {
  return phm_weight(rule(), B());
}

std::vector<PhmLinearImpl::Source> PhmLinearImpl::weight_sources() const {
  std::vector<Source> out;
  for (const torch::Tensor* t : {&rule(), &W, &W_left, &W_right})
    if (t->defined())
      out.push_back({t->storage(), t->storage_offset(), static_cast<uint32_t>(t->_version())});
  return out;
}

torch::Tensor PhmLinearImpl::cached_weight() {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  std::vector<Source> sources = weight_sources();
  if (!cache_.defined() || sources != cache_sources_) {
    cache_ = weight();
    cache_sources_ = std::move(sources);
  }
  return cache_;
}

torch::Tensor PhmLinearImpl::forward(const torch::Tensor& x) {
  if (torch::GradMode::is_enabled()) {
    {  // Training: H is part of the graph. Drop a cached H so it does not hold old storage.
      std::lock_guard<std::mutex> lock(cache_mutex_);
      cache_ = torch::Tensor();
      cache_sources_.clear();
    }
    // x H through the layers' product (nn::linear on H^T, a view), then + b: the reference's
    // torch.matmul(x, H) + b, whose fp32 bias also keeps the sum in fp32 under autocast.
    return nn::linear(x, weight().t(), {}) + b;
  }
  return nn::linear(x, cached_weight().t(), {}) + b;
}

}  // namespace compacter::peft

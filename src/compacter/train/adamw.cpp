// AdamW (transformers 4.6 formulation) and the linear warmup / decay schedule (spec §6.1).
#include "compacter/train/adamw.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <torch/version.h>

#include "compacter/core/error.h"

namespace compacter::train {

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWOptions options)
    : params_(std::move(params)), options_(options) {
  exp_avg_.resize(params_.size());
  exp_avg_sq_.resize(params_.size());
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double t = static_cast<double>(steps_);
  const double step_size = lr * std::sqrt(1.0 - std::pow(b2, t)) / (1.0 - std::pow(b1, t));
  std::vector<torch::Tensor> p, g, m, v;
  for (size_t i = 0; i < params_.size(); ++i) {
    const torch::Tensor& param = params_[i].second;
    if (!param.grad().defined()) continue;
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = torch::zeros_like(param, torch::MemoryFormat::Contiguous);
      exp_avg_sq_[i] = torch::zeros_like(param, torch::MemoryFormat::Contiguous);
    }
    p.push_back(param);
    g.push_back(param.grad());
    m.push_back(exp_avg_[i]);
    v.push_back(exp_avg_sq_[i]);
  }
  if (p.empty()) return;
  // Per tensor, in this order: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g g;
  // p -= step_size m / (sqrt(v) + eps); p -= lr wd p.
  at::_foreach_mul_(m, b1);
  at::_foreach_add_(m, g, 1.0 - b1);
  at::_foreach_mul_(v, b2);
  at::_foreach_addcmul_(v, g, g, 1.0 - b2);
  std::vector<torch::Tensor> denom = at::_foreach_sqrt(v);
  at::_foreach_add_(denom, options_.eps);
  at::_foreach_addcdiv_(p, m, denom, -step_size);
  if (options_.weight_decay > 0) at::_foreach_add_(p, p, -lr * options_.weight_decay);
}

void AdamW::zero_grad() {
  for (auto& [name, p] : params_)
    if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
}

std::vector<std::pair<std::string, torch::Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!exp_avg_[i].defined()) continue;
    out.emplace_back("exp_avg." + params_[i].first, exp_avg_[i]);
    out.emplace_back("exp_avg_sq." + params_[i].first, exp_avg_sq_[i]);
  }
  return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, torch::Tensor>>& state,
                       int64_t steps) {
  std::map<std::string, torch::Tensor> by_name(state.begin(), state.end());
  for (size_t i = 0; i < params_.size(); ++i) {
    const torch::Tensor& p = params_[i].second;
    auto a = by_name.find("exp_avg." + params_[i].first);
    auto b = by_name.find("exp_avg_sq." + params_[i].first);
    check((a == by_name.end()) == (b == by_name.end()), "optimizer state of \"", params_[i].first,
          "\" is incomplete");
    if (a == by_name.end()) continue;
    check(a->second.sizes() == p.sizes() && b->second.sizes() == p.sizes(), "optimizer state of \"",
          params_[i].first, "\" has the wrong shape");
    exp_avg_[i] = a->second.to(p.device(), p.scalar_type()).contiguous();
    exp_avg_sq_[i] = b->second.to(p.device(), p.scalar_type()).contiguous();
  }
  steps_ = steps;
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const torch::Tensor& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return {};
  const std::vector<torch::Tensor> norms = at::_foreach_norm(grads, 2);
  torch::Tensor total = norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2);
  const torch::Tensor coef = torch::clamp_max(max_norm / (total + 1e-6), 1.0);
#if TORCH_VERSION_MAJOR * 100 + TORCH_VERSION_MINOR >= 201
  at::_foreach_mul_(grads, coef);  // one fused kernel on CUDA (libtorch 2.1 and later)
#else
  for (torch::Tensor& grad : grads) grad.mul_(coef);
#endif
  return total;
}

double linear_schedule(int64_t step, int64_t warmup, int64_t total, double peak) {
  if (step < warmup) return peak * static_cast<double>(step) / static_cast<double>(warmup);
  const double left =
      static_cast<double>(total - step) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  return peak * std::max(0.0, left);
}

}  // namespace compacter::train

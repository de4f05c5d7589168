// AdamW (transformers 4.6 formulation) and the linear warmup / decay schedule (spec §6.1).
#include "compacter/train/adamw.h"

#include <algorithm>
#include <cmath>
#include <map>

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
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor& p = params_[i].second;
    if (!p.grad().defined()) continue;
    const torch::Tensor g = p.grad();
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = torch::zeros_like(p, torch::MemoryFormat::Contiguous);
      exp_avg_sq_[i] = torch::zeros_like(p, torch::MemoryFormat::Contiguous);
    }
    exp_avg_[i].mul_(b1).add_(g, 1.0 - b1);
    exp_avg_sq_[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
    torch::Tensor denom = exp_avg_sq_[i].sqrt().add_(options_.eps);
    p.addcdiv_(exp_avg_[i], denom, -step_size);
    if (options_.weight_decay > 0) p.add_(p, -lr * options_.weight_decay);
  }
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

double linear_schedule(int64_t step, int64_t warmup, int64_t total, double peak) {
  if (step < warmup) return peak * static_cast<double>(step) / static_cast<double>(warmup);
  const double left =
      static_cast<double>(total - step) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  return peak * std::max(0.0, left);
}

}  // namespace compacter::train

// Intrinsic-SAID (spec §3.12; Aghajanyan et al.): every backbone tensor is reparameterised as
//   theta_j = theta0_j + lambda_j * P_j(theta_d),
//   P_j(x) = H(G_j . (H(B_j . x_j))[pi_j])[0:D_j] / (||G_j||_2 sqrt(D_j))   (Fastfood),
// where x_j is theta_d zero-padded (or truncated) to L_j = 2^ceil(log2 D_j), H the unnormalised
// Walsh-Hadamard transform (matrix products with H_64, CPU and CUDA), B_j random signs, pi_j a
// random permutation and G_j ~ N(0, 1), all drawn from the seed and not saved. Trainable: theta_d
// (d0 - (m + 1) values, zeros) and lambda (m + 1 values, ones; entry 0, theta_d's own slot,
// unused). The computed tensors replace the members that T5's forward reads (the parameters
// themselves stay as theta0, frozen); model.before_forward recomputes them before every forward
// pass.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

#include "compacter/nn/t5.h"
#include "compacter/peft/methods.h"

namespace compacter::peft {

// Unnormalised fast Walsh-Hadamard transform of x [L] (L a power of two), Sylvester order.
torch::Tensor fwht(const torch::Tensor& x);

struct SaidOptions {
  int64_t intrinsic_dim = 20000;  // d0
  // false: the reference's backward of H scaled by 1/sqrt(L) (gradient to theta_d from tensor j
  // scaled by 1/L_j, spec §3.12); true: the exact gradient.
  bool exact_gradient = false;
  // false: a tied output layer stays at its pretrained value (the reference's quirk);
  // true: it follows the reparameterised embedding.
  bool project_lm_head = false;
};

class SaidImpl : public torch::nn::Module {
 public:
  SaidImpl(nn::T5ModelImpl& model, const SaidOptions& options, uint64_t seed);
  // Recomputes every reparameterised tensor from theta_d and lambda and installs it. The random
  // constants are drawn from the seed on the first call (counting parameters needs none).
  void apply();
  int64_t reparameterised() const { return static_cast<int64_t>(targets_.size()); }  // m
  torch::Tensor theta;   // "theta_d" [d0 - (m + 1)]
  torch::Tensor lambda;  // "lambda" [m + 1]

 private:
  struct Target {
    std::string name;
    torch::Tensor* slot;                 // the member the forward pass reads
    torch::Tensor initial;               // theta0: the frozen parameter
    torch::Tensor signs, perm, inverse;  // B_j; pi_j and its inverse (int32)
    torch::Tensor gauss;                 // G_j / (||G_j||_2 sqrt(D_j))
    int64_t length = 0;                  // L_j
  };
  void draw_constants();
  std::vector<Target> targets_;
  SaidOptions options_;
  uint64_t seed_;
  bool drawn_ = false;
};
TORCH_MODULE(Said);

// Freezes the model, registers the SAID module on it as "said" (parameters "said.theta_d",
// "said.lambda") and sets model.before_forward to recompute the tensors. Returns the module.
Said attach_said(nn::T5ModelImpl& model, const SaidOptions& options, uint64_t seed);

// The record: trains with the task prefix (spec §4.2); rewrites every backbone tensor, so it
// cannot be merged into a tied checkpoint (the output layer keeps theta0, §3.12) nor share them.
MethodInfo said_method();

}  // namespace compacter::peft

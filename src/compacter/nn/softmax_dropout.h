// The attention weights of T5 while training (spec §1.1; HF T5Attention.forward):
//   dropout(softmax(scores + bias, -1), p)
// with the softmax in fp32 and the dropout of nn/dropout.h (the same mask rule, over the weights'
// [B, H, Q, K] elements in their logical order). On the CPU, for fp32 scores and an fp32 bias (or
// none) broadcast to them, one pass per row forward (the sum with the bias, its maximum, exp with
// nn/exp_approx.h, the normalisation and the mask) and one backward (the mask's product and
// softmax's: g_s = p * (g_p - sum(g_p * p)), g_p = g * mask), where libtorch's operators made
// five passes over [B, H, Q, K] forward (the add, softmax's, dropout's) and the backward two.
// Keeps the softmax's output and the 1-byte mask for the backward, as the unfused operators did.
// The bias gets its gradient (summed over the dimensions it was broadcast along) where it needs
// one. Anything else (other dtypes, devices, p = 0, evaluation) is the unfused operators, as
// before.
#pragma once
#include <torch/torch.h>

namespace compacter::nn {

// bias may be undefined.
torch::Tensor softmax_dropout(const torch::Tensor& scores, const torch::Tensor& bias, double p,
                              bool training);

}  // namespace compacter::nn

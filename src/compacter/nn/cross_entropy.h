// The training loss of T5 (spec §1.2; HF T5ForConditionalGeneration): the cross-entropy of logits
// [R, V] against labels [R], averaged over the rows whose label is not ignore_index: PyTorch's
// F.cross_entropy(logits, labels, ignore_index=-100) with reduction "mean",
//   loss = sum over kept rows r of (log sum_j exp(x_rj) - x_r,label_r) / (number of kept rows),
// NaN when every row is ignored (0 / 0, as PyTorch). Gradient: (softmax(x_r) - onehot(label_r)) *
// dloss / kept for kept rows, 0 for ignored ones.
// On the CPU with fp32 logits, one pass per row forward (the maximum, then the sum of exp(x - max)
// in 16 partial sums) and one backward (exp(x - lse), with nn/exp_approx.h), each row on one
// thread, where libtorch made log_softmax's passes, nll_loss's, and their backward's: 13 ms of a
// t5-small Compacter++ fp32 step (2-core VM; 48 rows of 32,128 logits). The row sums are
// accumulated in double. Elsewhere (other dtypes or devices) it is libtorch's cross_entropy.
#pragma once
#include <torch/torch.h>

namespace compacter::nn {

// Throws Error when a label is neither ignore_index nor in [0, V), naming it and its row, or when
// the shapes do not match.
torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels,
                            int64_t ignore_index = -100);

// Decoding's log-probability of each row's chosen token: scores [R, V], chosen [R] (long, any
// device) -> [R] float32 on the scores' device, x[r, chosen[r]] - log sum_j exp(x[r, j]), what
// torch::log_softmax(scores, -1).gather(1, chosen.unsqueeze(1)).squeeze(1) computes (within
// float32 rounding: the sums differ in order and in exp's last bits). On the CPU with fp32
// scores one pass per row as the loss above, without the [R, V] log_softmax (0.9 ms of a 23 ms
// decoding step at batch 32 over t5's 32,128 tokens); elsewhere that expression. Throws Error
// naming the row when a chosen token is outside [0, V).
torch::Tensor log_softmax_at(const torch::Tensor& scores, const torch::Tensor& chosen);

}  // namespace compacter::nn

// Constrained decoding to a label set (classification): every label's token sequence, followed
// by </s>, is scored under the model teacher-forced (one decoder pass per label over the whole
// batch, the encoder run once), and the labels' log-probabilities are normalised over the set:
//   log p(label | input) = sum_t log_softmax(logits_t)[label_t]   (t over the label's tokens and
//                                                                    </s>)
//   P(label_i | input, set) = exp(lp_i) / sum_j exp(lp_j)
// The prediction is the most probable label (the first on ties). Unlike free generation this
// always answers with a label, with a calibrated-as-the-model distribution over the set.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "compacter/nn/t5.h"

namespace compacter::decoding {

struct LabelDistribution {
  std::vector<double> logprobs;       // log p(label | input), one per label
  std::vector<double> probabilities;  // normalised over the labels (sum 1)
  int64_t best = 0;                   // argmax
};

// input_ids / attention_mask [B, S]; labels: each label's token ids without </s> (not empty as a
// set; a label may be empty: then only </s> is scored). `eos` and `start` are the model's
// end-of-sequence and decoder start ids. Eval mode, no gradients; the model's mode is kept.
std::vector<LabelDistribution> score_labels(nn::T5ModelImpl& model, const torch::Tensor& input_ids,
                                            const torch::Tensor& attention_mask,
                                            const std::vector<std::vector<int64_t>>& labels,
                                            int64_t eos, int64_t start);

}  // namespace compacter::decoding

// Analytic matrix-multiply FLOPs of T5 (the "model FLOPs" of the paper's Table 3 efficiency
// report, `compacter bench`). A product of an [m, k] and a [k, n] matrix counts 2 m n k; norms,
// softmax, activations, dropout, the relative-position bias and the loss are ignored, and so are
// the modules a fine-tuning method adds (adapters, PHM products, SAID's Fastfood transform).
//
// Forward pass, batch B, encoder length S (prompt tuning: source length + prompt rows), decoder
// length T, d = d_model, i = num_heads * d_kv, f = d_ff, V = vocab_size:
//   every encoder block:  q, k, v, o          4 * 2 B S d i
//                         scores, values      2 * 2 B S S i
//                         feed-forward        (2 if gated else 1) * 2 B S d f  +  2 B S f d
//   every decoder block:  self q, k, v, o     4 * 2 B T d i
//                         self scores, values 2 * 2 B T T i   (causal mask applied afterwards)
//                         cross q, o          2 * 2 B T d i
//                         cross k, v          2 * 2 B S d i   (on the encoder's states)
//                         cross scores/values 2 * 2 B T S i
//                         feed-forward        as in the encoder with T for S
//   output layer:                             2 B T d V
//
// A training step's model FLOPs (training_step_flops):
//   3 x forward when the backbone's weight matrices need gradients (full fine-tuning, and
//     Intrinsic-SAID, whose weights are functions of the trainable theta_d): forward + input
//     gradients + weight gradients;
//   2 x forward otherwise (frozen backbone: adapters, Compacter, BitFit, prompt tuning): forward +
//     input gradients only; weight gradients of frozen weights are never computed.
// The rule is the usual approximation: the attention score / value products have two activation
// operands, so their backward costs 2x their forward in both cases.
//
// Greedy generation with cached keys and values (train/generate.h; t5_generation_flops), batch B,
// source length S, N new tokens: the encoder once as above; every decoder block's cross k, v once
// (2 * 2 B S d i, cached at the first step); then N decoder steps, step t = 1..N on one new
// position that attends to t self-attention positions (the start token and the t - 1 tokens
// before it):
//   every decoder block:  self q, k, v, o     4 * 2 B d i
//                         self scores, values 2 * 2 B t i
//                         cross q, o          2 * 2 B d i
//                         cross scores/values 2 * 2 B S i
//                         feed-forward        (2 if gated else 1) * 2 B d f  +  2 B f d
//   output layer:                             2 B d V
// With N = 1 this is the forward pass above with T = 1.
#pragma once
#include <cstdint>

#include "compacter/io/t5_config.h"

namespace compacter::train {

struct ForwardFlops {
  double encoder = 0.0;       // every encoder block
  double decoder = 0.0;       // every decoder block, cross-attention included
  double output_layer = 0.0;  // logits over the vocabulary
  double total() const { return encoder + decoder + output_layer; }
};

// Throws Error unless batch, source_len and target_len are positive.
ForwardFlops t5_forward_flops(const T5Config& config, int64_t batch, int64_t source_len,
                              int64_t target_len);

// 3 x or 2 x the forward FLOPs (see above).
double training_step_flops(const ForwardFlops& forward, bool backbone_weight_gradients);

struct GenerationFlops {
  double encoder = 0.0;       // the encoder pass
  double cross_kv = 0.0;      // every decoder block's cross-attention keys and values, once
  double first_step = 0.0;    // decoder step 1 with its output layer (cross k, v not included)
  double later_steps = 0.0;   // decoder steps 2..N with their output layers
  double output_layer = 0.0;  // the output layer's share of first_step + later_steps
  // Everything up to the first token: encoder + cross k, v + step 1.
  double first_token() const { return encoder + cross_kv + first_step; }
  double total() const { return first_token() + later_steps; }
};

// Throws Error unless batch and source_len are positive and new_tokens is at least 1.
GenerationFlops t5_generation_flops(const T5Config& config, int64_t batch, int64_t source_len,
                                    int64_t new_tokens);

}  // namespace compacter::train

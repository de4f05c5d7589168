// Matrix-multiply FLOPs of a T5 forward pass, a training step and greedy generation: see flops.h.
#include "compacter/train/flops.h"

#include "compacter/core/error.h"

namespace compacter::train {

namespace {

// 2 m n k for an [m, k] x [k, n] product.
double matmul(double m, double n, double k) {
  return 2.0 * m * n * k;
}

}  // namespace

ForwardFlops t5_forward_flops(const T5Config& c, int64_t batch, int64_t source_len,
                              int64_t target_len) {
  check(batch > 0 && source_len > 0 && target_len > 0,
        "FLOP count: batch, source length and target length must be positive");
  const double b = static_cast<double>(batch);
  const double src = b * static_cast<double>(source_len);  // encoder positions in the batch
  const double tgt = b * static_cast<double>(target_len);  // decoder positions in the batch
  const double s = static_cast<double>(source_len), t = static_cast<double>(target_len);
  const double d = static_cast<double>(c.d_model), inner = static_cast<double>(c.inner_dim());
  const double ff = static_cast<double>(c.d_ff), wi = c.is_gated() ? 2.0 : 1.0;

  // Attention products over all heads: scores [q, kv] per position and the weighted values.
  auto attention_products = [&](double queries, double keys) {
    return matmul(queries, keys, inner) + matmul(queries, inner, keys);
  };
  auto feed_forward = [&](double positions) {
    return wi * matmul(positions, ff, d) + matmul(positions, d, ff);
  };

  const double encoder_block =
      4.0 * matmul(src, inner, d) + attention_products(src, s) + feed_forward(src);
  const double decoder_block = 4.0 * matmul(tgt, inner, d) + attention_products(tgt, t) +
                               2.0 * matmul(tgt, inner, d) + 2.0 * matmul(src, inner, d) +
                               attention_products(tgt, s) + feed_forward(tgt);
  ForwardFlops f;
  f.encoder = static_cast<double>(c.num_layers) * encoder_block;
  f.decoder = static_cast<double>(c.decoder_layers()) * decoder_block;
  f.output_layer = matmul(tgt, static_cast<double>(c.vocab_size), d);
  return f;
}

GenerationFlops t5_generation_flops(const T5Config& c, int64_t batch, int64_t source_len,
                                    int64_t new_tokens) {
  check(batch > 0 && source_len > 0 && new_tokens > 0,
        "FLOP count: batch, source length and new tokens must be positive");
  const double b = static_cast<double>(batch), s = static_cast<double>(source_len);
  const double d = static_cast<double>(c.d_model), inner = static_cast<double>(c.inner_dim());
  const double ff = static_cast<double>(c.d_ff), wi = c.is_gated() ? 2.0 : 1.0;
  const double layers = static_cast<double>(c.decoder_layers());

  GenerationFlops g;
  // The encoder is the forward pass's (the decoder length does not enter it).
  g.encoder = t5_forward_flops(c, batch, source_len, 1).encoder;
  g.cross_kv = layers * 2.0 * matmul(b * s, inner, d);
  const double output_layer = matmul(b, static_cast<double>(c.vocab_size), d);
  for (int64_t t = 1; t <= new_tokens; ++t) {
    const double keys = static_cast<double>(t);
    const double block = 4.0 * matmul(b, inner, d) + matmul(b, keys, inner) +
                         matmul(b, inner, keys) + 2.0 * matmul(b, inner, d) + matmul(b, s, inner) +
                         matmul(b, inner, s) + wi * matmul(b, ff, d) + matmul(b, d, ff);
    (t == 1 ? g.first_step : g.later_steps) += layers * block + output_layer;
    g.output_layer += output_layer;
  }
  return g;
}

double training_step_flops(const ForwardFlops& forward, bool backbone_weight_gradients) {
  return (backbone_weight_gradients ? 3.0 : 2.0) * forward.total();
}

}  // namespace compacter::train

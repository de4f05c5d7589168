// Small T5 shapes for tests (tiny_t5.h).
#include "support/tiny_t5.h"

namespace compacter::testing {

T5Config tiny_t5_config(const TinyT5& shape) {
  T5Config c;
  c.vocab_size = shape.vocab;
  c.d_model = shape.d_model;
  c.d_kv = shape.d_kv;
  c.num_heads = shape.heads;
  c.d_ff = shape.d_ff;
  c.num_layers = shape.layers;
  if (shape.decoder_layers >= 0) c.num_decoder_layers = shape.decoder_layers;
  if (shape.v1_1) {
    c.feed_forward_proj = "gated-gelu";
    c.tie_word_embeddings = false;
  }
  return c;
}

nn::T5Model tiny_t5(const TinyT5& shape, uint64_t seed) {
  nn::T5Model model(tiny_t5_config(shape));
  model->init_weights(seed);
  return model;
}

}  // namespace compacter::testing

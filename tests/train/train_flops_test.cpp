// The analytic FLOP counter of `compacter bench` (src/compacter/train/flops.h), checked against
// sums written out by hand for tiny shapes, and generation with one token against the forward pass.
#include <gtest/gtest.h>

#include "compacter/core/error.h"
#include "compacter/train/flops.h"
#include "support/tiny_t5.h"

namespace compacter {
namespace {

T5Config tiny() {
  testing::TinyT5 shape;
  shape.vocab = 128;
  shape.d_model = 32;
  shape.d_kv = 8;
  shape.heads = 4;  // inner 32
  shape.d_ff = 64;
  return testing::tiny_t5_config(shape);
}

TEST(Flops, ReluModelByHand) {
  // B = 2, S = 8, T = 3: 16 encoder positions, 6 decoder positions.
  // Encoder block: q,k,v,o 4 * 2*16*32*32 = 131072; scores and values 2 * 2*2*8*8*32 = 16384;
  //   wi 2*16*32*64 = 65536, wo 65536. Block 278528, two blocks 557056.
  // Decoder block: self q,k,v,o 4 * 2*6*32*32 = 49152; self scores/values 2 * 2*2*3*3*32 = 2304;
  //   cross q,o 2 * 2*6*32*32 = 24576; cross k,v 2 * 2*16*32*32 = 65536;
  //   cross scores/values 2 * 2*2*3*8*32 = 6144; wi + wo 2 * 2*6*32*64 = 49152.
  //   Block 196864, two blocks 393728.
  // Output layer: 2*6*32*128 = 49152.
  const train::ForwardFlops f = train::t5_forward_flops(tiny(), 2, 8, 3);
  EXPECT_DOUBLE_EQ(f.encoder, 557056.0);
  EXPECT_DOUBLE_EQ(f.decoder, 393728.0);
  EXPECT_DOUBLE_EQ(f.output_layer, 49152.0);
  EXPECT_DOUBLE_EQ(f.total(), 999936.0);
  EXPECT_DOUBLE_EQ(train::training_step_flops(f, true), 2999808.0);
  EXPECT_DOUBLE_EQ(train::training_step_flops(f, false), 1999872.0);
}

TEST(Flops, GatedModelWithOneDecoderBlockByHand) {
  T5Config c = tiny();
  c.feed_forward_proj = "gated-gelu";
  c.num_decoder_layers = 1;
  // B = 1, S = 4, T = 2.
  // Encoder block: q,k,v,o 4 * 2*4*32*32 = 32768; scores/values 2 * 2*4*4*32 = 2048;
  //   wi_0, wi_1 2 * 2*4*32*64 = 32768, wo 16384. Block 83968, two blocks 167936.
  // Decoder block: self q,k,v,o 4 * 2*2*32*32 = 16384; self scores/values 2 * 2*2*2*32 = 512;
  //   cross q,o 2 * 2*2*32*32 = 8192; cross k,v 2 * 2*4*32*32 = 16384;
  //   cross scores/values 2 * 2*2*4*32 = 1024; wi_0, wi_1, wo 3 * 2*2*32*64 = 24576. 67072.
  // Output layer: 2*2*32*128 = 16384.
  const train::ForwardFlops f = train::t5_forward_flops(c, 1, 4, 2);
  EXPECT_DOUBLE_EQ(f.encoder, 167936.0);
  EXPECT_DOUBLE_EQ(f.decoder, 67072.0);
  EXPECT_DOUBLE_EQ(f.output_layer, 16384.0);
  EXPECT_DOUBLE_EQ(f.total(), 251392.0);
}

TEST(Flops, GreedyGenerationByHand) {
  // Relu tiny model, B = 2, S = 8, N = 3 new tokens (2 decoder blocks, inner 32).
  // Encoder: as in ReluModelByHand, 557056.
  // Cross k, v once per block: 2 * 2*16*32*32 = 65536; two blocks 131072.
  // Decoder step t, per block: self q,k,v,o 4 * 2*2*32*32 = 16384; self scores/values
  //   2 * 2*2*t*32 = 256 t; cross q,o 2 * 2*2*32*32 = 8192; cross scores/values 2 * 2*2*8*32 =
  //   2048; wi + wo 2 * 2*2*32*64 = 16384. Block 43008 + 256 t; output layer 2*2*32*128 = 16384.
  //   Step t: 2 * (43008 + 256 t) + 16384 = 102400 + 512 t.
  //   t = 1: 102912; t = 2: 103424; t = 3: 103936.
  const train::GenerationFlops g = train::t5_generation_flops(tiny(), 2, 8, 3);
  EXPECT_DOUBLE_EQ(g.encoder, 557056.0);
  EXPECT_DOUBLE_EQ(g.cross_kv, 131072.0);
  EXPECT_DOUBLE_EQ(g.first_step, 102912.0);
  EXPECT_DOUBLE_EQ(g.later_steps, 103424.0 + 103936.0);
  EXPECT_DOUBLE_EQ(g.output_layer, 3 * 16384.0);
  EXPECT_DOUBLE_EQ(g.first_token(), 557056.0 + 131072.0 + 102912.0);
  EXPECT_DOUBLE_EQ(g.total(), 557056.0 + 131072.0 + 102912.0 + 103424.0 + 103936.0);
}

TEST(Flops, OneGeneratedTokenIsTheForwardPassWithOneTargetPosition) {
  T5Config c = tiny();
  c.feed_forward_proj = "gated-gelu";
  c.num_decoder_layers = 3;
  const train::ForwardFlops f = train::t5_forward_flops(c, 3, 5, 1);
  const train::GenerationFlops g = train::t5_generation_flops(c, 3, 5, 1);
  EXPECT_DOUBLE_EQ(g.total(), f.total());
  EXPECT_DOUBLE_EQ(g.output_layer, f.output_layer);
  EXPECT_DOUBLE_EQ(g.later_steps, 0.0);
}

TEST(Flops, RejectsEmptyShapes) {
  EXPECT_THROW(train::t5_forward_flops(tiny(), 0, 8, 3), Error);
  EXPECT_THROW(train::t5_forward_flops(tiny(), 2, 8, 0), Error);
  EXPECT_THROW(train::t5_generation_flops(tiny(), 2, 8, 0), Error);
  EXPECT_THROW(train::t5_generation_flops(tiny(), 0, 8, 1), Error);
}

}  // namespace
}  // namespace compacter

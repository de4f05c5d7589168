// nn::onednn_matmul_bf16 (bf16 products through oneDNN's matmul primitive, nn/onednn_matmul.h)
// against double-precision products: on small integers, which bf16 holds exactly and whose sums
// fp32 holds exactly, an fp32 result is the exact sum and a bf16 result the exact sum (plus the
// bias) rounded once to nearest even; for every transposition, leading dimensions wider than the
// matrices, and more shapes than a thread keeps primitives for. Then the layer (nn::bf16_linear)
// with the primitive on and off (it takes the primitive only where oneDNN uses AMX): both the
// exact sums rounded once, forward and x's gradient.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "compacter/nn/autocast.h"
#include "compacter/nn/bf16_linear.h"
#include "compacter/nn/onednn_api.h"
#include "compacter/nn/onednn_matmul.h"
#include "support/bf16_rounding.h"

namespace compacter::nn {
namespace {

using testing::round_to_bf16;

// Skips where oneDNN 2.x's matmul API is not in the process, or has no bf16 kernel for this CPU
// (no AVX-512); where it has one, the primitive must pass its own start-up check (else the layers
// would quietly keep the GEMM API).
#define REQUIRE_MATMUL()                                                                \
  if (!onednn_symbol("dnnl_matmul_desc_init"))                                          \
    GTEST_SKIP() << "no oneDNN 2.x matmul primitive in this process";                   \
  if (onednn_matmul_bf16_support() == MatmulSupport::kNoKernel)                         \
    GTEST_SKIP() << "oneDNN has no bf16 matmul kernel for this CPU (it needs AVX-512)"; \
  ASSERT_TRUE(onednn_matmul_bf16_available()) << "oneDNN's matmul primitive is in the " \
                                                 "process but failed its 2 x 2 x 2 check"

torch::Tensor integers(std::vector<int64_t> sizes, int64_t high = 9) {
  return torch::randint(-high + 1, high, sizes).to(torch::kFloat32);
}

// op(X) as stored: 'N' keeps [rows, cols] (leading dimension ld >= cols), 'T' stores its transpose
// [cols, rows] (ld >= rows). Returns the bf16 storage (wider by the padding) and op(X) in double.
struct Operand {
  torch::Tensor storage;  // bf16, [stored rows, ld]
  torch::Tensor value;    // double, op(X)
  int64_t ld = 0;
};
Operand operand(char op, int64_t rows, int64_t cols, int64_t pad, int64_t high = 9) {
  const torch::Tensor x = integers({rows, cols}, high);
  const torch::Tensor stored = op == 'N' ? x : x.t().contiguous();
  const int64_t ld = stored.size(1) + pad;
  torch::Tensor storage = integers({stored.size(0), ld}, high).to(torch::kBFloat16);  // padding
  storage.narrow(1, 0, stored.size(1)).copy_(stored.to(torch::kBFloat16));
  return {storage, x.to(torch::kDouble), ld};
}

TEST(OnednnMatmulBf16, EveryTranspositionAndLeadingDimensionGivesTheExactSums) {
  REQUIRE_MATMUL();
  torch::manual_seed(0);
  for (char ta : {'N', 'T'})
    for (char tb : {'N', 'T'})
      for (int64_t pad : {0, 3}) {
        const int64_t m = 37, n = 29, k = 45;
        const Operand a = operand(ta, m, k, pad), b = operand(tb, k, n, pad);
        const int64_t ldc = n + pad;
        torch::Tensor c = torch::full({m, ldc}, -7.0f);
        onednn_matmul_bf16(ta, tb, m, n, k, a.storage.data_ptr<c10::BFloat16>(), a.ld,
                           b.storage.data_ptr<c10::BFloat16>(), b.ld, c.data_ptr<float>(), ldc);
        const torch::Tensor want = torch::mm(a.value, b.value).to(torch::kFloat32);
        EXPECT_TRUE(torch::equal(c.narrow(1, 0, n), want)) << ta << tb << " pad " << pad;
        if (pad > 0) {  // the columns past n are not C's and stay as they were
          EXPECT_TRUE(torch::equal(c.narrow(1, n, pad), torch::full({m, pad}, -7.0f)));
        }
      }
}

TEST(OnednnMatmulBf16, ABf16ResultIsTheExactSumPlusTheBiasRoundedOnce) {
  REQUIRE_MATMUL();
  torch::manual_seed(1);
  bool rounded = false;
  for (char tb : {'N', 'T'})
    for (bool with_bias : {false, true}) {
      // Sums up to 64 * 40 * 40: beyond bf16's 8 bits, so most of them need the rounding.
      const int64_t m = 24, n = 40, k = 64;
      const Operand a = operand('N', m, k, 0, 41), b = operand(tb, k, n, 0, 41);
      const torch::Tensor bias = integers({n}, 1000);
      torch::Tensor c = torch::empty({m, n}, torch::kBFloat16);
      onednn_matmul_bf16('N', tb, m, n, k, a.storage.data_ptr<c10::BFloat16>(), a.ld,
                         b.storage.data_ptr<c10::BFloat16>(), b.ld, c.data_ptr<c10::BFloat16>(), n,
                         with_bias ? bias.data_ptr<float>() : nullptr);
      torch::Tensor exact = torch::mm(a.value, b.value);
      if (with_bias) exact += bias.to(torch::kDouble);
      const torch::Tensor want = round_to_bf16(exact);
      EXPECT_TRUE(torch::equal(c.to(torch::kFloat32), want)) << tb << " bias " << with_bias;
      rounded = rounded || !torch::equal(want, exact.to(torch::kFloat32));
    }
  EXPECT_TRUE(rounded);  // the rounding was exercised
}

TEST(OnednnMatmulBf16, MoreShapesThanAThreadKeepsStayExact) {
  REQUIRE_MATMUL();
  torch::manual_seed(2);
  const Operand b = operand('T', 16, 12, 0);
  for (int64_t m = 1; m <= kKeptMatmulPrimitives + 6; ++m) {
    const Operand a = operand('N', m, 16, 0);
    torch::Tensor c = torch::empty({m, 12});
    onednn_matmul_bf16('N', 'T', m, 12, 16, a.storage.data_ptr<c10::BFloat16>(), a.ld,
                       b.storage.data_ptr<c10::BFloat16>(), b.ld, c.data_ptr<float>(), 12);
    ASSERT_TRUE(torch::equal(c, torch::mm(a.value, b.value).to(torch::kFloat32))) << m << " rows";
  }
}

// The layer under autocast, primitive on and off: y = round(x W^T + b) and, for a bf16 x,
// dX = round(G W), the sums exact.
TEST(OnednnMatmulBf16, TheLayerGivesTheExactSumsRoundedOnceWithAndWithoutThePrimitive) {
  REQUIRE_MATMUL();
  if (!onednn_bf16_gemm_available()) GTEST_SKIP() << "no dnnl_gemm_bf16bf16f32 in this process";
  torch::manual_seed(3);
  const int64_t rows = kBf16MatmulRowsFrom + 9, in = 48, out = 40;
  const torch::Tensor x0 = integers({rows, in}, 41).to(torch::kBFloat16);
  const torch::Tensor w = integers({out, in}, 41), b = integers({out}, 500);
  const torch::Tensor g = integers({rows, out}, 41).to(torch::kBFloat16);
  const torch::Tensor y_want = round_to_bf16(
      torch::mm(x0.to(torch::kDouble), w.to(torch::kDouble).t()) + b.to(torch::kDouble));
  const torch::Tensor gx_want =
      round_to_bf16(torch::mm(g.to(torch::kDouble), w.to(torch::kDouble)));
  for (bool primitive : {true, false}) {
    set_bf16_matmul_primitive(primitive);
    EXPECT_EQ(bf16_matmul_primitive_used(), primitive && onednn_uses_amx());
    torch::Tensor x = x0.clone().set_requires_grad(true);
    torch::Tensor y;
    {
      const AutocastScope autocast(torch::kCPU, true);
      y = bf16_linear(x, w, b);
    }
    y.backward(g);
    EXPECT_TRUE(torch::equal(y.to(torch::kFloat32), y_want)) << "primitive " << primitive;
    ASSERT_EQ(x.grad().scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(x.grad().to(torch::kFloat32), gx_want)) << "primitive " << primitive;
  }
  set_bf16_matmul_primitive(true);
}

}  // namespace
}  // namespace compacter::nn

// nn::batched_matmul (the attention's strided products) against a naive triple loop in double
// precision, on the layouts attention hands it (heads' views, K's transpose, cached and
// concatenated keys, one query row), on each gemm it may use (the BLAS's, oneDNN's sgemm, oneDNN's
// bf16 GEMM), and its gradients against finite differences.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "compacter/nn/autocast.h"
#include "compacter/nn/batched_matmul.h"
#include "compacter/nn/bf16_linear.h"
#include "compacter/nn/linear_kernel.h"
#include "support/bf16_rounding.h"

namespace compacter::nn {
namespace {

using testing::round_to_bf16;

// C[i] = A[i] B[i] by loops over every index, in double.
torch::Tensor naive(const torch::Tensor& a_in, const torch::Tensor& b_in) {
  const torch::Tensor a = a_in.to(torch::kDouble).contiguous();
  const torch::Tensor b = b_in.to(torch::kDouble).contiguous();
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  const int64_t count = a.numel() / std::max<int64_t>(m * k, 1);
  std::vector<int64_t> sizes(a.sizes().begin(), a.sizes().end() - 2);
  sizes.push_back(m);
  sizes.push_back(n);
  torch::Tensor c = torch::zeros(sizes, torch::kDouble);
  const double* ap = a.data_ptr<double>();
  const double* bp = b.data_ptr<double>();
  double* cp = c.data_ptr<double>();
  for (int64_t i = 0; i < count; ++i)
    for (int64_t r = 0; r < m; ++r)
      for (int64_t col = 0; col < n; ++col) {
        double s = 0;
        for (int64_t j = 0; j < k; ++j)
          s += ap[i * m * k + r * k + j] * bp[i * k * n + j * n + col];
        cp[i * m * n + r * n + col] = s;
      }
  return c;
}

double max_abs_diff(const torch::Tensor& x, const torch::Tensor& y) {
  return (x.to(torch::kDouble) - y.to(torch::kDouble)).abs().max().item<double>();
}

// [B, T, H * d] projections viewed as [B, H, T, d], as T5Attention::split_heads does.
torch::Tensor heads(const torch::Tensor& x, int64_t h) {
  return x.view({x.size(0), x.size(1), h, x.size(2) / h}).transpose(1, 2);
}

struct Layout {
  const char* name;
  std::function<std::pair<torch::Tensor, torch::Tensor>(torch::ScalarType)> make;
};

std::vector<Layout> layouts() {
  auto opt = [](torch::ScalarType t) { return torch::TensorOptions().dtype(t); };
  return {
      {"scores: heads(Q) heads(K)^T",
       [=](torch::ScalarType t) {
         torch::Tensor q = torch::randn({3, 7, 4 * 5}, opt(t)),
                       k = torch::randn({3, 6, 20}, opt(t));
         return std::make_pair(heads(q, 4), heads(k, 4).transpose(-1, -2));
       }},
      {"values: P heads(V)",
       [=](torch::ScalarType t) {
         torch::Tensor p = torch::randn({3, 4, 7, 6}, opt(t)), v = torch::randn({3, 6, 20}, opt(t));
         return std::make_pair(p, heads(v, 4));
       }},
      {"one query row against cached keys",
       [=](torch::ScalarType t) {
         torch::Tensor q = torch::randn({2, 1, 12}, opt(t));
         torch::Tensor cached = torch::cat(
             {torch::randn({2, 3, 5, 4}, opt(t)), heads(torch::randn({2, 1, 12}, opt(t)), 3)}, 2);
         return std::make_pair(heads(q, 3), cached.transpose(-1, -2));
       }},
      {"contiguous 3-D",
       [=](torch::ScalarType t) {
         return std::make_pair(torch::randn({5, 9, 33}, opt(t)), torch::randn({5, 33, 17}, opt(t)));
       }},
      {"inner size 0",
       [=](torch::ScalarType t) {
         return std::make_pair(torch::randn({2, 3, 0}, opt(t)), torch::randn({2, 0, 4}, opt(t)));
       }},
  };
}

// fp32 on either gemm the linear layers may use (the BLAS's, oneDNN's sgemm), fp64 on the BLAS's.
TEST(BatchedMatmul, EqualsNaiveLoopsOnAttentionLayouts) {
  torch::manual_seed(0);
  for (const Fp32LinearKernel kernel : {Fp32LinearKernel::kBlas, Fp32LinearKernel::kOnednn}) {
    if (kernel == Fp32LinearKernel::kOnednn && !onednn_sgemm_available()) continue;
    set_fp32_linear_kernel(kernel);
    for (int threads : {1, 2}) {
      torch::set_num_threads(threads);
      for (torch::ScalarType t : {torch::kFloat32, torch::kFloat64}) {
        for (const Layout& l : layouts()) {
          SCOPED_TRACE(::testing::Message() << l.name << ", " << t << ", threads " << threads
                                            << ", " << fp32_linear_kernel_name(kernel));
          auto [a, b] = l.make(t);
          EXPECT_TRUE(batched_matmul_uses_blas(a, b));
          const torch::Tensor c = batched_matmul(a, b);
          ASSERT_EQ(c.sizes(), naive(a, b).sizes());
          ASSERT_EQ(c.scalar_type(), t);
          if (c.numel() == 0) continue;
          EXPECT_LT(max_abs_diff(c, naive(a, b)), t == torch::kFloat32 ? 1e-4 : 1e-12);
        }
      }
    }
  }
  set_fp32_linear_kernel(Fp32LinearKernel::kBlas);
  torch::set_num_threads(1);
}

// bf16 operands (and fp32 ones under bf16 autocast, rounded to bf16 first) through oneDNN's bf16
// GEMM: on small integers, which bf16 holds exactly and whose sums fp32 holds exactly, the
// product is the exact one rounded to bf16 once; on every attention layout, at 1 and 2 threads;
// the gradients likewise (G B^T and A^T G, exact sums rounded once).
TEST(BatchedMatmul, Bf16ProductsAreTheExactSumsRoundedOnce) {
  if (!onednn_bf16_gemm_available()) GTEST_SKIP() << "no dnnl_gemm_bf16bf16f32 in this process";
  torch::manual_seed(4);
  bool rounded = false;
  for (int threads : {1, 2}) {
    torch::set_num_threads(threads);
    for (const bool autocast : {false, true}) {
      for (const Layout& l : layouts()) {
        SCOPED_TRACE(::testing::Message()
                     << l.name << ", autocast " << autocast << ", threads " << threads);
        auto [a0, b0] = l.make(autocast ? torch::kFloat32 : torch::kBFloat16);
        // Same layouts, integer values: fill the views' memory in place.
        {
          torch::NoGradGuard no_grad;
          a0.copy_(torch::randint(-8, 9, a0.sizes()));
          b0.copy_(torch::randint(-8, 9, b0.sizes()));
        }
        const torch::Tensor a = a0.detach().requires_grad_(true);
        const torch::Tensor b = b0.detach().requires_grad_(true);
        torch::Tensor c;
        {
          AutocastScope scope(torch::kCPU, autocast);
          EXPECT_TRUE(batched_matmul_uses_blas(a, b));
          c = batched_matmul(a, b);
        }
        ASSERT_EQ(c.scalar_type(), torch::kBFloat16);
        const torch::Tensor want = naive(a.detach(), b.detach());
        ASSERT_EQ(c.sizes(), want.sizes());
        if (c.numel() == 0) continue;
        EXPECT_TRUE(torch::equal(c.to(torch::kFloat32), round_to_bf16(want)));
        rounded = rounded || !torch::equal(round_to_bf16(want), want.to(torch::kFloat32));
        const torch::Tensor g = torch::randint(-8, 9, c.sizes()).to(torch::kBFloat16);
        c.backward(g);
        ASSERT_EQ(a.grad().scalar_type(), a.scalar_type());
        const torch::Tensor ga = naive(g, b.detach().transpose(-1, -2));
        const torch::Tensor gb = naive(a.detach().transpose(-1, -2), g);
        // bf16 operands get bf16 gradients (rounded once); autocast's fp32 ones, the rounded
        // gradient cast back to fp32 (autocast's rounding of the operands is a cast, whose
        // gradient is a cast back).
        EXPECT_TRUE(torch::equal(a.grad().to(torch::kFloat32), round_to_bf16(ga)));
        EXPECT_TRUE(torch::equal(b.grad().to(torch::kFloat32), round_to_bf16(gb)));
      }
    }
  }
  EXPECT_TRUE(rounded);
  torch::set_num_threads(1);
}

TEST(BatchedMatmul, OtherInputsTakeTorchMatmul) {
  torch::Tensor a = torch::randn({2, 3, 4}), b = torch::randn({2, 4, 5});
  EXPECT_FALSE(batched_matmul_uses_blas(a.to(torch::kHalf), b.to(torch::kHalf)));
  EXPECT_FALSE(batched_matmul_uses_blas(a, b.to(torch::kDouble)));
  // bf16 where the bf16 linear layers use libtorch's product.
  set_bf16_linear_kernel(Bf16LinearKernel::kLibtorch);
  EXPECT_FALSE(batched_matmul_uses_blas(a.to(torch::kBFloat16), b.to(torch::kBFloat16)));
  set_bf16_linear_kernel(Bf16LinearKernel::kOnednn);
  EXPECT_FALSE(batched_matmul_uses_blas(a.select(0, 0), b.select(0, 0)));  // 2-D
  EXPECT_FALSE(batched_matmul_uses_blas(torch::randn({1, 3, 4}), b));      // broadcast batch
  // Neither row nor column stride 1: no BLAS layout.
  torch::Tensor strided = torch::randn({2, 6, 8}).slice(1, 0, 6, 2).slice(2, 0, 8, 2);
  torch::Tensor other = torch::randn({2, 4, 5});
  EXPECT_FALSE(batched_matmul_uses_blas(strided, other));
  EXPECT_LT(max_abs_diff(batched_matmul(strided, other), naive(strided, other)), 1e-4);
}

// Gradients of sum(W * (A B)) against central differences, in double, through the strided views
// (the heads' views and K's transpose get their gradients through the view).
TEST(BatchedMatmul, GradientsMatchFiniteDifferences) {
  torch::manual_seed(1);
  const auto opt = torch::TensorOptions().dtype(torch::kDouble);
  torch::Tensor q = torch::randn({2, 5, 6}, opt).requires_grad_(true);
  torch::Tensor k = torch::randn({2, 4, 6}, opt).requires_grad_(true);
  torch::Tensor w = torch::randn({2, 3, 5, 4}, opt);
  auto f = [&](const torch::Tensor& qq, const torch::Tensor& kk) {
    return (batched_matmul(heads(qq, 3), heads(kk, 3).transpose(-1, -2)) * w).sum();
  };
  ASSERT_TRUE(batched_matmul_uses_blas(heads(q, 3), heads(k, 3).transpose(-1, -2)));
  f(q, k).backward();
  const double eps = 1e-6;
  for (torch::Tensor* x : {&q, &k}) {
    torch::Tensor grad = x->grad().clone();
    torch::NoGradGuard no_grad;
    torch::Tensor flat = x->view({-1});
    for (int64_t i = 0; i < flat.numel(); ++i) {
      const double keep = flat[i].item<double>();
      flat[i] = keep + eps;
      const double up = f(q, k).item<double>();
      flat[i] = keep - eps;
      const double down = f(q, k).item<double>();
      flat[i] = keep;
      EXPECT_NEAR(grad.view({-1})[i].item<double>(), (up - down) / (2 * eps), 1e-7) << i;
    }
  }
}

// A product asked to be laid out as the query's heads' view gets that view's strides (so the
// attention's out.transpose(1, 2).reshape(B, T, H * d) is a view) and the naive values; a
// column-major layout (K's transpose) is met too; a layout of other sizes, or not dense, gives a
// contiguous product.
TEST(BatchedMatmul, ProductTakesTheLayoutAskedFor) {
  torch::manual_seed(2);
  torch::Tensor p = torch::randn({2, 3, 5, 4});
  torch::Tensor v = heads(torch::randn({2, 4, 3 * 6}), 3);  // [2, 3, 4, 6]
  torch::Tensor like =
      heads(torch::randn({2, 5, 3 * 6}), 3);  // [2, 3, 5, 6], [2, 5, 3, 6] in memory
  torch::Tensor out = batched_matmul(p, v, like);
  EXPECT_EQ(out.strides(), like.strides());
  EXPECT_LT(max_abs_diff(out, naive(p, v)), 1e-4);
  EXPECT_TRUE(out.transpose(1, 2).is_contiguous());
  torch::Tensor column_major = torch::randn({2, 3, 4, 5}).transpose(-1, -2);  // [2, 3, 5, 4]
  torch::Tensor q = torch::randn({2, 3, 5, 7}), k = torch::randn({2, 3, 7, 4});
  torch::Tensor c = batched_matmul(q, k, column_major);
  EXPECT_EQ(c.strides(), column_major.strides());
  EXPECT_LT(max_abs_diff(c, naive(q, k)), 1e-4);
  EXPECT_TRUE(batched_matmul(p, v, torch::randn({2, 3, 6, 5})).is_contiguous());  // other sizes
  torch::Tensor gappy = torch::randn({2, 3, 5, 12}).slice(3, 0, 12, 2);           // not dense
  torch::Tensor g = batched_matmul(p, v, gappy);
  EXPECT_TRUE(g.is_contiguous());
  EXPECT_LT(max_abs_diff(g, naive(p, v)), 1e-4);
}

// The same in bf16 (each matrix rounded into the product's memory as it is computed): a product
// laid out as the heads' view of [B, T, H * d] memory, also with one query row, has that layout
// and the exact sums rounded once, on small integers as above.
TEST(BatchedMatmul, Bf16ProductTakesTheLayoutAskedFor) {
  if (!onednn_bf16_gemm_available()) GTEST_SKIP() << "no dnnl_gemm_bf16bf16f32 in this process";
  torch::manual_seed(5);
  auto ints = [](std::vector<int64_t> sizes) {
    return torch::randint(-8, 9, sizes).to(torch::kBFloat16);
  };
  for (int threads : {1, 2}) {
    torch::set_num_threads(threads);
    for (int64_t rows : {5, 1}) {
      SCOPED_TRACE(::testing::Message() << "rows " << rows << ", threads " << threads);
      torch::Tensor p = ints({2, 3, rows, 9});
      torch::Tensor v = heads(ints({2, 9, 3 * 6}), 3);        // [2, 3, 9, 6]
      torch::Tensor like = heads(ints({2, rows, 3 * 6}), 3);  // [2, 3, rows, 6]
      torch::Tensor out = batched_matmul(p, v, like);
      EXPECT_EQ(out.strides(), like.strides());
      EXPECT_TRUE(out.transpose(1, 2).is_contiguous());
      EXPECT_TRUE(torch::equal(out.to(torch::kFloat32), round_to_bf16(naive(p, v))));
    }
  }
  torch::set_num_threads(1);
}

// The gradients of the heads' views come laid out as those views (the projections' [B, T, H * d]
// memory), so the views' backward copies nothing, and equal torch::matmul's gradients; through
// attention's two products (scores with K's transpose, then values laid out as the query).
TEST(BatchedMatmul, GradientsAreLaidOutAsTheirInputs) {
  torch::manual_seed(3);
  torch::Tensor q = torch::randn({2, 5, 12}).requires_grad_(true);
  torch::Tensor k = torch::randn({2, 6, 12}).requires_grad_(true);
  torch::Tensor v = torch::randn({2, 6, 12}).requires_grad_(true);
  torch::Tensor w = torch::randn({2, 5, 12});
  std::vector<torch::Tensor> grads;
  for (const bool ours : {true, false}) {
    torch::Tensor hq = heads(q, 3), hk = heads(k, 3), hv = heads(v, 3);
    std::vector<std::vector<int64_t>> seen(3);  // the gradients' strides, as autograd hands them
    for (size_t i = 0; i < 3; ++i)
      std::vector<torch::Tensor>{hq, hk, hv}[i].register_hook(
          [&seen, i](const torch::Tensor& g) { seen[i] = g.strides().vec(); });
    torch::Tensor s =
        ours ? batched_matmul(hq, hk.transpose(-1, -2)) : torch::matmul(hq, hk.transpose(-1, -2));
    torch::Tensor pv = ours ? batched_matmul(torch::softmax(s, -1), hv, hq)
                            : torch::matmul(torch::softmax(s, -1), hv);
    if (ours) {
      EXPECT_TRUE(pv.transpose(1, 2).is_contiguous());
    }
    (pv.transpose(1, 2).reshape({2, 5, 12}) * w).sum().backward();
    if (ours) {
      EXPECT_EQ(seen[0], hq.strides().vec());
      EXPECT_EQ(seen[1], hk.strides().vec());
      EXPECT_EQ(seen[2], hv.strides().vec());
    }
    for (torch::Tensor* x : {&q, &k, &v}) {
      grads.push_back(x->grad().clone());
      x->mutable_grad() = torch::Tensor();
    }
  }
  for (size_t i = 0; i < 3; ++i) EXPECT_LT(max_abs_diff(grads[i], grads[i + 3]), 1e-5) << i;
}

}  // namespace
}  // namespace compacter::nn

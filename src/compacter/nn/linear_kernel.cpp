// Linear layers through oneDNN's sgemm or the BLAS (see linear_kernel.h).
#include "compacter/nn/linear_kernel.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <atomic>

#include "compacter/core/error.h"
#include "compacter/nn/bf16_linear.h"
#include "compacter/nn/onednn_api.h"
#include "compacter/nn/stand_in.h"

namespace compacter::nn {

namespace {

// oneDNN's C API (dnnl.h, oneDNN 2.x): row-major sgemm, dnnl_dim_t = int64_t, returns
// dnnl_status_t (dnnl_success = 0).
using DnnlSgemm = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);

DnnlSgemm sgemm() {
  static const auto f = reinterpret_cast<DnnlSgemm>(onednn_symbol("dnnl_sgemm"));
  return f;
}

std::atomic<Fp32LinearKernel> g_kernel{Fp32LinearKernel::kBlas};

bool applies(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  if (!linear_operands_fit(x, w, b)) return false;
  if (x.scalar_type() != torch::kFloat32 || w.scalar_type() != torch::kFloat32) return false;
  if (b.defined() && b.scalar_type() != torch::kFloat32) return false;
  if (at::autocast::is_cpu_enabled()) return false;  // autocast decides the products' dtype
  return sgemm() != nullptr;
}

// x as a contiguous [M, K] matrix (a view when it already is one).
torch::Tensor rows_of(const torch::Tensor& x) {
  return x.reshape({-1, x.size(-1)}).contiguous();
}

// From 16 to 128 rows of x, x W^T without W^T is computed transposed, as (W x^T)^T: oneDNN's
// sgemm('N', 'T') slows down 2-4x once x has 16 rows (decoding: one row per sequence and beam;
// training's decoder: batch x target rows), and sgemm('N', 'T') with the operands swapped does
// not. Medians with cold operands on the 2-core Zen 5, 2 threads
// (bench/results/skinny-linear-vm-20261206, bench/bench_linear_rows.cpp), this path against
// x W^T: the vocabulary projection (N 32128, K 512) at 16 rows 3.3 against 9.1 ms, at 32 4.3
// against 10.2, at 128 15.5 against 18.3; T5's wo (N 512, K 2048) at 16 rows 0.40 against 1.45
// ms, at 128 1.62 against 2.17; below 16 rows x W^T is the faster on the shapes that stay in cache
// (0.67-0.83x the time), and from 192 rows the two are even.
constexpr int64_t kTransposedFrom = 16, kTransposedTo = 128;
// Below 16 rows, x W^T reads W once per 4 rows (t5-small's vocabulary: 1.8, 2.4, 4.5, 9.1 ms at
// 1, 4, 8, 16 rows), which costs where W does not stay in cache: from 5 rows a weight of 8M
// elements (32 MiB) or more takes the transposed product too (the vocabulary at 8 rows 3.3
// against 5.5 ms, t5-base's 4.9 against 8.2; greedy decoding at batch 5 to 15).
constexpr int64_t kLargeWeightFrom = 5, kLargeWeight = int64_t{8} << 20;

bool transposed_product(int64_t rows, int64_t n, int64_t k) {
  if (rows >= kTransposedFrom && rows <= kTransposedTo) return true;
  return rows >= kLargeWeightFrom && rows < kTransposedFrom && n * k >= kLargeWeight;
}

// y [M, N] = the transpose of yt [N, M] (both row-major), in blocks of y's columns so that each
// task reads whole rows of yt. Not libtorch's copy_ of yt.t(), which transposes on one thread:
// 0.66 against 1.35 ms at 48 rows of the vocabulary, 1.6 against 3.8 ms at 128 (2 threads, cold;
// bench/results/skinny-linear-vm-20261206).
void transpose_into(const float* yt, int64_t n, int64_t m, float* y) {
  constexpr int64_t kBlock = 64;
  at::parallel_for(0, (n + kBlock - 1) / kBlock, 1, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t j0 = blk * kBlock, j1 = std::min(n, j0 + kBlock);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = j0; j < j1; ++j) y[i * n + j] = yt[j * m + i];
    }
  });
}

// y = x W^T (+ b) on contiguous x2 [M, K], W [N, K], made with x's leading sizes (a tensor of
// its own, not a view: autograd forbids in-place changes to a view a custom function returns).
// With wt defined (W^T [K, N], contiguous), the product reads it instead of W; without, it is
// computed as (W x^T)^T where transposed_product says.
torch::Tensor forward_product(const torch::Tensor& x, const torch::Tensor& x2,
                              const torch::Tensor& w, const torch::Tensor& b,
                              const torch::Tensor& wt = {}) {
  // Named for libtorch's profiler (bench --profile), as the backward's products are.
  RECORD_FUNCTION("compacter::onednn_linear", c10::ArrayRef<const c10::IValue>{});
  const int64_t m = x2.size(0), k = x2.size(1), n = w.size(0);
  torch::Tensor y = torch::empty(sizes_with_last(x, n), x2.options());
  if (wt.defined()) {
    onednn_sgemm('N', 'N', m, n, k, x2.data_ptr<float>(), k, wt.data_ptr<float>(), n,
                 y.data_ptr<float>(), n);
  } else if (transposed_product(m, n, k)) {
    const torch::Tensor yt = torch::empty({n, m}, x2.options());
    onednn_sgemm('N', 'T', n, m, k, w.data_ptr<float>(), k, x2.data_ptr<float>(), k,
                 yt.data_ptr<float>(), m);
    transpose_into(yt.data_ptr<float>(), n, m, y.data_ptr<float>());
  } else {
    onednn_sgemm('N', 'T', m, n, k, x2.data_ptr<float>(), k, w.data_ptr<float>(), k,
                 y.data_ptr<float>(), n);
  }
  if (b.defined()) y.add_(b);
  return y;
}

// dX = G W (G [M, N], W [N, K]); dW = G^T X; db = sum over rows of G. b is empty for no bias;
// wt, W^T for the forward's product, is empty when there is none.
struct OnednnLinearFunction : torch::autograd::Function<OnednnLinearFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& w, const torch::Tensor& b,
                               const torch::Tensor& wt) {
    const torch::Tensor x2 = rows_of(x);
    const torch::Tensor wc = w.contiguous();
    // Keep only what the gradients asked for need: W for dX, X for dW.
    ctx->save_for_backward(
        {x.requires_grad() ? wc : torch::Tensor(), w.requires_grad() ? x2 : torch::Tensor()});
    ctx->saved_data["x_sizes"] = x.sizes().vec();
    return forward_product(x, x2, wc, b.numel() > 0 ? b : torch::Tensor(),
                           wt.numel() > 0 ? wt : torch::Tensor());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const std::vector<int64_t> x_sizes = ctx->saved_data["x_sizes"].toIntVector();
    const torch::Tensor g2 = rows_of(grads[0]);
    const int64_t m = g2.size(0), n = g2.size(1);
    torch::Tensor gx, gw, gb;
    if (ctx->needs_input_grad(0)) {
      const torch::Tensor& w = saved[0];
      const int64_t k = w.size(1);
      gx = torch::empty(x_sizes, g2.options());  // row-major [M, K]
      onednn_sgemm('N', 'N', m, k, n, g2.data_ptr<float>(), n, w.data_ptr<float>(), k,
                   gx.data_ptr<float>(), k);
    }
    if (ctx->needs_input_grad(1)) {
      const torch::Tensor& x2 = saved[1];
      const int64_t k = x2.size(1);
      gw = torch::empty({n, k}, g2.options());
      onednn_sgemm('T', 'N', n, k, m, g2.data_ptr<float>(), n, x2.data_ptr<float>(), k,
                   gw.data_ptr<float>(), k);
    }
    if (ctx->needs_input_grad(2)) gb = g2.sum(0);  // b is defined (not the empty stand-in)
    return {gx, gw, gb, torch::Tensor()};
  }
};

}  // namespace

void FrozenWeight::refresh(const torch::Tensor& w) {
  if (source_.matches(w)) return;
  wt_ = torch::Tensor();  // the old copies freed before new ones are made
  wb_ = torch::Tensor();
  source_.record(w);
}

torch::Tensor FrozenWeight::transposed(const torch::Tensor& w) {
  std::lock_guard<std::mutex> lock(mutex_);
  refresh(w);
  if (!wt_.defined() || wt_.size(0) != w.size(1) || wt_.size(1) != w.size(0)) {
    at::NoGradGuard no_grad;
    wt_ = w.detach().t().contiguous();
  }
  return wt_;
}

torch::Tensor FrozenWeight::bf16(const torch::Tensor& w) {
  std::lock_guard<std::mutex> lock(mutex_);
  refresh(w);
  if (!wb_.defined() || wb_.sizes() != w.sizes()) {
    at::NoGradGuard no_grad;
    wb_ = w.detach().to(torch::kBFloat16).contiguous();
  }
  return wb_;
}

bool FrozenWeight::holds() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return wt_.defined() || wb_.defined();
}

void FrozenWeight::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  wt_ = torch::Tensor();
  wb_ = torch::Tensor();
  source_.reset();
}

void set_fp32_linear_kernel(Fp32LinearKernel kernel) {
  g_kernel.store(kernel);
}

Fp32LinearKernel fp32_linear_kernel() {
  return g_kernel.load();
}

std::string fp32_linear_kernel_name(Fp32LinearKernel kernel) {
  return kernel == Fp32LinearKernel::kOnednn ? "oneDNN" : "OpenBLAS";
}

bool onednn_sgemm_available() {
  return sgemm() != nullptr;
}

void onednn_sgemm(char transa, char transb, int64_t m, int64_t n, int64_t k, const float* a,
                  int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
  const DnnlSgemm f = sgemm();
  check(f != nullptr, "oneDNN's dnnl_sgemm is not in this process (libdnnl.so.2 not found)");
  const int status = f(transa, transb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
  check(status == 0, "oneDNN's dnnl_sgemm failed (status ", status, ") on ", m, " x ", n, " x ", k);
}

bool onednn_linear_applies(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& bias) {
  return applies(x, weight, bias);
}

torch::Tensor onednn_linear(const torch::Tensor& x, const torch::Tensor& weight,
                            const torch::Tensor& bias, FrozenWeight* frozen) {
  if (!applies(x, weight, bias)) return torch::linear(x, weight, bias);
  const bool grads =
      torch::GradMode::is_enabled() &&
      (x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad()));
  if (!grads) return forward_product(x, rows_of(x), weight.contiguous(), bias);
  const torch::Tensor& none = absent_input();  // "no bias" / "no W^T" (nn/stand_in.h)
  if (frozen && weight.requires_grad() && frozen->holds()) frozen->clear();  // trained again
  const torch::Tensor wt = frozen && !weight.requires_grad() ? frozen->transposed(weight) : none;
  return OnednnLinearFunction::apply(x, weight, bias.defined() ? bias : none, wt);
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     FrozenWeight* frozen) {
  // bf16_linear is torch::linear where its path does not apply, as the fp32 paths are under
  // autocast.
  if (at::autocast::is_cpu_enabled() && bf16_linear_kernel() == Bf16LinearKernel::kOnednn)
    return bf16_linear(x, weight, bias, frozen);
  if (bf16_model_linear_applies(x, weight, bias)) return bf16_model_linear(x, weight, bias);
  if (g_kernel.load(std::memory_order_relaxed) == Fp32LinearKernel::kOnednn)
    return onednn_linear(x, weight, bias, frozen);
  return torch::linear(x, weight, bias);
}

}  // namespace compacter::nn

// bf16-autocast linear layers through oneDNN's bf16 GEMM (see bf16_linear.h).
#include "compacter/nn/bf16_linear.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>

#include <array>
#include <atomic>

#include "compacter/core/error.h"
#include "compacter/kernels/report.h"
#include "compacter/nn/bf16_round.h"
#include "compacter/nn/onednn_api.h"
#include "compacter/nn/onednn_matmul.h"
#include "compacter/nn/stand_in.h"
#include "compacter/nn/tensor_source.h"

namespace compacter::nn {

namespace {

// oneDNN's C API (dnnl.h, oneDNN 2.x): row-major C = alpha op(A) op(B) + beta C with bf16 A, B
// (dnnl_bfloat16_t = uint16_t bits) and fp32 C; dnnl_dim_t = int64_t; returns dnnl_status_t
// (dnnl_success = 0).
using DnnlGemmBf16 = int (*)(char, char, int64_t, int64_t, int64_t, float, const uint16_t*, int64_t,
                             const uint16_t*, int64_t, float, float*, int64_t);

DnnlGemmBf16 find_bf16_gemm() {
  void* f = onednn_symbol("dnnl_gemm_bf16bf16f32");
  if (!f) return nullptr;
  // oneDNN 2.x implements it only on AVX-512 CPUs (elsewhere it returns dnnl_unimplemented): one
  // 1 x 1 x 1 product (1.5 * 2 = 3) tells.
  const auto gemm = reinterpret_cast<DnnlGemmBf16>(f);
  const uint16_t a = 0x3FC0, b = 0x4000;  // 1.5 and 2 in bf16
  float c = 0;
  return gemm('N', 'N', 1, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f, &c, 1) == 0 && c == 3.0f ? gemm
                                                                                    : nullptr;
}

DnnlGemmBf16 bf16_gemm() {
  static const DnnlGemmBf16 f = find_bf16_gemm();
  return f;
}

std::atomic<bool> g_widening_forced{false};

// A stored rows x cols bf16 matrix (leading dimension ld) widened to contiguous fp32, each value
// exactly (nn/bf16_round.h).
torch::Tensor widened(const c10::BFloat16* x, int64_t rows, int64_t cols, int64_t ld) {
  torch::Tensor out = torch::empty({rows, cols}, torch::kFloat32);
  float* y = out.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) widen_bf16_to_fp32(x + r * ld, y + r * cols, cols);
  return out;
}

std::atomic<Bf16LinearKernel> g_bf16_kernel{Bf16LinearKernel::kOnednn};

std::atomic<bool> g_matmul_primitive{true};

// Whether a product of m rows takes oneDNN's matmul primitive (see kBf16MatmulRowsFrom): with AMX
// only, never inside a parallel region (the attention's products, one matrix per thread, keep the
// GEMM API).
bool use_matmul(int64_t m) {
  return m >= kBf16MatmulRowsFrom && bf16_matmul_primitive_used() && !bf16_gemm_widens() &&
         !at::in_parallel_region();
}

bool half_or_single(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat32 || t.scalar_type() == torch::kBFloat16;
}

bool bf16_applies(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  if (!at::autocast::is_cpu_enabled() || at::autocast::get_autocast_cpu_dtype() != torch::kBFloat16)
    return false;
  if (!linear_operands_fit(x, w, b)) return false;
  if (!half_or_single(x) || !half_or_single(w) || (b.defined() && !half_or_single(b))) return false;
  return onednn_bf16_gemm_available();
}

// x as a contiguous bf16 [M, K] matrix (x itself, viewed, when it already is one).
torch::Tensor bf16_rows(const torch::Tensor& x) {
  return x.reshape({-1, x.size(-1)}).to(torch::kBFloat16).contiguous();
}

// The last few activations rounded to bf16 on this thread while training, so that a layer input
// several layers read gets rounded once: the normed input of an attention's q, k and v, the
// encoder's output for a cross-attention's k and v (libtorch's autocast rounds it for each).
// An entry is used only for the same tensor (the same TensorImpl, alive) with the same version
// counter and data, so an in-place change or a reused address is never served stale bits. It
// keeps at most kKeptRounded roundings, each dropped at the next lookup once its tensor is gone;
// made once per thread and never freed, so no thread meets it destroyed at exit.
constexpr size_t kKeptRounded = 4;
struct Rounded {
  TensorSource source;
  torch::Tensor rows;
};

torch::Tensor bf16_rows_kept(const torch::Tensor& x) {
  if (x.scalar_type() == torch::kBFloat16) return bf16_rows(x);
  thread_local auto* kept = new std::array<Rounded, kKeptRounded>();
  thread_local size_t next = 0;
  for (Rounded& r : *kept) {
    if (r.source.expired()) {  // its tensor is gone: so is the rounding
      r.source.reset();
      r.rows = torch::Tensor();
      continue;
    }
    if (r.source.matches(x) && r.rows.size(1) == x.size(-1) && r.rows.numel() == x.numel())
      return r.rows;
  }
  Rounded& r = (*kept)[next];
  next = (next + 1) % kKeptRounded;
  r.rows = torch::Tensor();  // the old one freed first
  r.rows = bf16_rows(x);
  r.source.record(x);
  return r.rows;
}

// out (contiguous [m, n], fp32 or bf16) = op(A) op(B) (+ bias, an fp32 vector [n], when defined),
// summed in fp32: through the matmul primitive, which adds the bias and writes out's type itself,
// when `matmul` and use_matmul(m); else the GEMM API into fp32, the bias added, then rounded.
void product_into(torch::Tensor& out, bool matmul, char ta, char tb, int64_t m, int64_t n,
                  int64_t k, const c10::BFloat16* a, int64_t lda, const c10::BFloat16* b,
                  int64_t ldb, const torch::Tensor& bias = torch::Tensor()) {
  const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
  if (matmul && use_matmul(m)) {
    if (out.scalar_type() == torch::kBFloat16)
      onednn_matmul_bf16(ta, tb, m, n, k, a, lda, b, ldb, out.data_ptr<c10::BFloat16>(), n, bp);
    else
      onednn_matmul_bf16(ta, tb, m, n, k, a, lda, b, ldb, out.data_ptr<float>(), n, bp);
    return;
  }
  const torch::Tensor f = out.scalar_type() == torch::kFloat32
                              ? out
                              : torch::empty(out.sizes(), out.options().dtype(torch::kFloat32));
  onednn_gemm_bf16(ta, tb, m, n, k, a, lda, b, ldb, f.data_ptr<float>(), n);
  if (bias.defined()) f.add_(bias);
  if (!f.is_same(out)) out.copy_(f);
}

// y = xb Wb^T (+ b, in fp32) rounded to bf16, with x's leading sizes; xb [M, K] and Wb [N, K]
// contiguous bf16.
torch::Tensor bf16_forward_product(const torch::Tensor& x, const torch::Tensor& xb,
                                   const torch::Tensor& wb, const torch::Tensor& b) {
  RECORD_FUNCTION("compacter::bf16_linear", c10::ArrayRef<const c10::IValue>{});
  const int64_t m = xb.size(0), k = xb.size(1), n = wb.size(0);
  // With x's leading sizes (row-major [M, N] in memory): the result is a tensor of its own, not a
  // view (autograd forbids in-place changes to a view a custom function returns).
  torch::Tensor y = torch::empty(sizes_with_last(x, n), xb.options());
  const torch::Tensor bias = b.defined() ? b.to(torch::kFloat32).contiguous() : torch::Tensor();
  product_into(y, /*matmul=*/true, 'N', 'T', m, n, k, xb.data_ptr<c10::BFloat16>(), k,
               wb.data_ptr<c10::BFloat16>(), k, bias);
  return y;
}

// dX = G Wb, dW = G^T xb, summed in fp32 and written in the input's dtype; db = sum over rows of G.
struct Bf16LinearFunction : torch::autograd::Function<Bf16LinearFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& w, const torch::Tensor& b,
                               const torch::Tensor& kept) {
    const torch::Tensor xb = bf16_rows_kept(x);
    const torch::Tensor wb = kept.numel() > 0 ? kept : w.to(torch::kBFloat16).contiguous();
    // Keep only what the gradients asked for need: Wb for dX, xb for dW.
    ctx->save_for_backward(
        {x.requires_grad() ? wb : torch::Tensor(), w.requires_grad() ? xb : torch::Tensor()});
    ctx->saved_data["x_sizes"] = x.sizes().vec();
    ctx->saved_data["x_type"] = x.scalar_type();
    ctx->saved_data["w_type"] = w.scalar_type();
    ctx->saved_data["b_type"] = b.scalar_type();
    return bf16_forward_product(x, xb, wb, b.numel() > 0 ? b : torch::Tensor());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor g = bf16_rows(grads[0]);
    const int64_t m = g.size(0), n = g.size(1);
    torch::Tensor gx, gw, gb;
    if (ctx->needs_input_grad(0)) {
      const torch::Tensor& wb = saved[0];
      const int64_t k = wb.size(1);
      gx = torch::empty(ctx->saved_data["x_sizes"].toIntVector(),
                        g.options().dtype(ctx->saved_data["x_type"].toScalarType()));
      product_into(gx, /*matmul=*/true, 'N', 'N', m, k, n, g.data_ptr<c10::BFloat16>(), n,
                   wb.data_ptr<c10::BFloat16>(), k);
    }
    if (ctx->needs_input_grad(1)) {
      const torch::Tensor& xb = saved[1];
      const int64_t k = xb.size(1);
      gw = torch::empty({n, k}, g.options().dtype(ctx->saved_data["w_type"].toScalarType()));
      product_into(gw, /*matmul=*/false, 'T', 'N', n, k, m, g.data_ptr<c10::BFloat16>(), n,
                   xb.data_ptr<c10::BFloat16>(), k);
    }
    if (ctx->needs_input_grad(2))
      gb =
          g.sum(0, /*keepdim=*/false, torch::kFloat32).to(ctx->saved_data["b_type"].toScalarType());
    return {gx, gw, gb, torch::Tensor()};
  }
};

}  // namespace

void set_bf16_linear_kernel(Bf16LinearKernel kernel) {
  g_bf16_kernel.store(kernel);
}

Bf16LinearKernel bf16_linear_kernel() {
  return g_bf16_kernel.load();
}

void set_bf16_matmul_primitive(bool on) {
  g_matmul_primitive.store(on);
}

bool bf16_matmul_primitive_used() {
  return g_matmul_primitive.load() && onednn_uses_amx() && onednn_matmul_bf16_available();
}

std::string bf16_onednn_products() {
  if (bf16_gemm_widens())
    return bf16_gemm() ? "fp32 GEMM on operands widened from bf16 (forced)" : kernels::kBf16Widened;
  if (!bf16_matmul_primitive_used())
    return onednn_uses_amx() || !g_matmul_primitive.load() ? "GEMM API" : "GEMM API (no AMX)";
  return "matmul primitive (AMX) from " + std::to_string(kBf16MatmulRowsFrom) +
         " rows (forward, x's gradient), GEMM API otherwise";
}

std::string bf16_linear_kernel_name(Bf16LinearKernel kernel) {
  return kernel == Bf16LinearKernel::kOnednn ? "oneDNN" : "libtorch";
}

bool onednn_bf16_gemm_available() {
  return bf16_gemm() != nullptr || onednn_sgemm_available();
}

void set_bf16_gemm_widening(bool forced) {
  g_widening_forced.store(forced);
}

bool bf16_gemm_widens() {
  return (bf16_gemm() == nullptr || g_widening_forced.load()) && onednn_sgemm_available();
}

void onednn_gemm_bf16(char transa, char transb, int64_t m, int64_t n, int64_t k,
                      const c10::BFloat16* a, int64_t lda, const c10::BFloat16* b, int64_t ldb,
                      float* c, int64_t ldc) {
  if (bf16_gemm_widens()) {
    // The operands as stored (op applied by the fp32 GEMM alike): A is m x k, or k x m for 'T'.
    const bool ta = transa == 'T' || transa == 't', tb = transb == 'T' || transb == 't';
    const torch::Tensor a32 = widened(a, ta ? k : m, ta ? m : k, lda);
    const torch::Tensor b32 = widened(b, tb ? n : k, tb ? k : n, ldb);
    onednn_sgemm(transa, transb, m, n, k, a32.data_ptr<float>(), a32.size(1), b32.data_ptr<float>(),
                 b32.size(1), c, ldc);
    return;
  }
  const DnnlGemmBf16 f = bf16_gemm();
  check(f != nullptr,
        "oneDNN's dnnl_gemm_bf16bf16f32 is not in this process (libdnnl.so.2 not found)");
  const int status = f(transa, transb, m, n, k, 1.0f, reinterpret_cast<const uint16_t*>(a), lda,
                       reinterpret_cast<const uint16_t*>(b), ldb, 0.0f, c, ldc);
  check(status == 0, "oneDNN's dnnl_gemm_bf16bf16f32 failed (status ", status, ") on ", m, " x ", n,
        " x ", k);
}

bool bf16_linear_applies(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias) {
  return bf16_applies(x, weight, bias);
}

torch::Tensor bf16_linear(const torch::Tensor& x, const torch::Tensor& weight,
                          const torch::Tensor& bias, FrozenWeight* frozen) {
  if (!bf16_applies(x, weight, bias)) return torch::linear(x, weight, bias);
  const bool grads =
      torch::GradMode::is_enabled() &&
      (x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad()));
  if (!grads)
    return bf16_forward_product(x, bf16_rows(x), weight.to(torch::kBFloat16).contiguous(), bias);
  const torch::Tensor& none = absent_input();  // "no bias" / "no kept copy" (nn/stand_in.h)
  if (frozen && weight.requires_grad() && frozen->holds()) frozen->clear();  // trained again
  const torch::Tensor kept =
      frozen && !weight.requires_grad() && weight.scalar_type() == torch::kFloat32
          ? frozen->bf16(weight)
          : none;
  return Bf16LinearFunction::apply(x, weight, bias.defined() ? bias : none, kept);
}

bool bf16_model_linear_applies(const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias) {
  if (at::autocast::is_cpu_enabled() || bf16_linear_kernel() != Bf16LinearKernel::kOnednn)
    return false;
  if (!linear_operands_fit(x, weight, bias)) return false;
  if (x.scalar_type() != torch::kBFloat16 || weight.scalar_type() != torch::kBFloat16 ||
      (bias.defined() && bias.scalar_type() != torch::kBFloat16))
    return false;
  if (torch::GradMode::is_enabled() &&
      (x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad())))
    return false;
  // Without bf16 instructions libtorch's bf16 product has no fast kernel either: all rows here.
  return (x.numel() / x.size(-1) < kBf16ModelRowsBelow || bf16_gemm_widens()) &&
         onednn_bf16_gemm_available();
}

torch::Tensor bf16_model_linear(const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias) {
  if (!bf16_model_linear_applies(x, weight, bias)) return torch::linear(x, weight, bias);
  return bf16_forward_product(x, bf16_rows(x), weight.contiguous(), bias);
}

}  // namespace compacter::nn

// Strided batched gemm on the CPU's BLAS (see batched_matmul.h).
#include "compacter/nn/batched_matmul.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <dlfcn.h>

#include <climits>

#include "compacter/nn/bf16_linear.h"
#include "compacter/nn/bf16_round.h"
#include "compacter/nn/cpu_clones.h"
#include "compacter/nn/linear_kernel.h"
#include "compacter/nn/stand_in.h"

namespace compacter::nn {

namespace {

// ?gemm_ as Fortran BLAS exports it (column-major), with gfortran's two hidden lengths of the
// character arguments.
template <typename T>
using Gemm = void (*)(const char*, const char*, const int*, const int*, const int*, const T*,
                      const T*, const int*, const T*, const int*, const T*, T*, const int*, size_t,
                      size_t);

// The BLAS libtorch multiplies with (libtorch_cpu needs it, so it is in the process already).
template <typename T>
Gemm<T> blas_gemm() {
  static const Gemm<T> f = reinterpret_cast<Gemm<T>>(
      dlsym(RTLD_DEFAULT, std::is_same_v<T, float> ? "sgemm_" : "dgemm_"));
  return f;
}

// One operand matrix (rows x cols, row-major indexing) as the BLAS sees it: a column-major
// matrix is the transpose of a row-major one, so a row-major matrix with unit column stride is
// op 'N' of its transpose, with leading dimension = its row stride.
struct Operand {
  char op = 'N';
  int64_t ld = 1;
  bool ok = false;
};

Operand operand(const torch::Tensor& x) {
  const int64_t rows = x.size(-2), cols = x.size(-1);
  const int64_t rs = x.stride(-2), cs = x.stride(-1);
  Operand o;
  if (cs == 1 || cols == 1) {  // row-major: 'N' on the column-major transpose
    o.op = 'N';
    o.ld = rows == 1 ? std::max<int64_t>(cols, 1) : rs;
    o.ok = o.ld >= std::max<int64_t>(cols, 1);
  }
  if (!o.ok && (rs == 1 || rows == 1)) {  // column-major: 'T'
    o.op = 'T';
    o.ld = cols == 1 ? std::max<int64_t>(rows, 1) : cs;
    o.ok = o.ld >= std::max<int64_t>(rows, 1);
  }
  o.ok = o.ok && o.ld <= INT_MAX;
  return o;
}

bool fits_int(const torch::Tensor& x) {
  return x.size(-2) <= INT_MAX && x.size(-1) <= INT_MAX;
}

// Offsets of every matrix of a batch in elements, in the batch's row-major order.
std::vector<int64_t> matrix_offsets(const torch::Tensor& x) {
  const int64_t batch_dims = x.dim() - 2;
  int64_t count = 1;
  for (int64_t d = 0; d < batch_dims; ++d) count *= x.size(d);
  std::vector<int64_t> offsets(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    int64_t rest = i, offset = 0;
    for (int64_t d = batch_dims - 1; d >= 0; --d) {
      offset += (rest % x.size(d)) * x.stride(d);
      rest /= x.size(d);
    }
    offsets[static_cast<size_t>(i)] = offset;
  }
  return offsets;
}

// Which gemm multiplies the matrices: the BLAS's (fp32, fp64), oneDNN's sgemm (fp32, where the
// linear layers use oneDNN: ~1.2x the BLAS's rate on the attention's 128 x 128 x 64 products,
// single-threaded, on the 2-core Zen 5) or oneDNN's bf16 GEMM (bf16 operands, fp32 accumulation,
// the product rounded to bf16 once: bf16 autocast and bf16 models, where the bf16 linear layers
// use oneDNN).
enum class Kernel { kNone, kBlas, kOnednnFp32, kOnednnBf16 };

// Whether a tensor laid out as `layout` can hold the product row by row: its matrices row-major
// (unit column stride, row stride at least the width, within int) and no two elements sharing
// memory with any gap (non-overlapping and dense, so empty_like keeps its strides).
bool row_major_layout(const torch::Tensor& layout) {
  if (!layout.defined() || layout.dim() < 3 || !layout.is_non_overlapping_and_dense()) return false;
  const int64_t cols = layout.size(-1);
  return (layout.stride(-1) == 1 || cols == 1) && layout.stride(-2) >= std::max<int64_t>(cols, 1) &&
         layout.stride(-2) <= INT_MAX;
}

// rows x cols fp32 values (row-major, contiguous) rounded to bf16 into rows of `ld` elements.
COMPACTER_CPU_CLONES
void round_rows_to_bf16(const float* x, int64_t rows, int64_t cols, c10::BFloat16* y, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) round_fp32_to_bf16(x + r * cols, y + r * ld, cols);
}

// C = A B into a new tensor with `layout`'s strides when row_major_layout(layout) and layout has
// C's sizes, else a contiguous one.
template <typename T>
torch::Tensor blas_bmm(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& layout,
                       Kernel kernel) {
  // Named for libtorch's profiler (bench --profile), which sees no aten operator here.
  RECORD_FUNCTION("compacter::batched_matmul", c10::ArrayRef<const c10::IValue>{});
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  std::vector<int64_t> out_sizes(a.sizes().begin(), a.sizes().end() - 2);
  out_sizes.push_back(m);
  out_sizes.push_back(n);
  const bool laid_out =
      layout.defined() && layout.sizes() == c10::IntArrayRef(out_sizes) && row_major_layout(layout);
  torch::Tensor c =
      laid_out ? torch::empty_like(layout, a.options())
               : torch::empty(out_sizes, a.options().memory_format(at::MemoryFormat::Contiguous));
  if (c.numel() == 0) return c;
  if (k == 0) return c.zero_();
  const Operand oa = operand(a), ob = operand(b);
  const std::vector<int64_t> a_off = matrix_offsets(a), b_off = matrix_offsets(b),
                             c_off = matrix_offsets(c);
  const int64_t c_ld = m == 1 ? std::max<int64_t>(n, 1) : c.stride(-2);
  if (kernel == Kernel::kOnednnBf16) {
    // Each matrix's fp32 product into the task's buffer, then rounded to bf16 into c's layout
    // while it is still in cache.
    const c10::BFloat16* ap = a.data_ptr<c10::BFloat16>();
    const c10::BFloat16* bp = b.data_ptr<c10::BFloat16>();
    c10::BFloat16* cp = c.data_ptr<c10::BFloat16>();
    at::parallel_for(0, static_cast<int64_t>(a_off.size()), 1, [&](int64_t begin, int64_t end) {
      std::vector<float> product(static_cast<size_t>(m * n));
      for (int64_t i = begin; i < end; ++i) {
        const auto j = static_cast<size_t>(i);
        onednn_gemm_bf16(oa.op, ob.op, m, n, k, ap + a_off[j], oa.ld, bp + b_off[j], ob.ld,
                         product.data(), n);
        round_rows_to_bf16(product.data(), m, n, cp + c_off[j], c_ld);
      }
    });
    return c;
  }
  const T* ap = a.data_ptr<T>();
  const T* bp = b.data_ptr<T>();
  T* cp = c.data_ptr<T>();
  const Gemm<T> gemm = blas_gemm<T>();
  const bool onednn = kernel == Kernel::kOnednnFp32;
  // Row-major C = A B is column-major C^T = B^T A^T: gemm(opB, opA, n, m, k, B, A, C with ld =
  // C's row stride).
  const int in = static_cast<int>(n), im = static_cast<int>(m), ik = static_cast<int>(k);
  const int lda = static_cast<int>(oa.ld), ldb = static_cast<int>(ob.ld);
  const int ldc = static_cast<int>(c_ld);
  const T one = 1, zero = 0;
  const int64_t count = static_cast<int64_t>(a_off.size());
  // One matrix per task: a BLAS called inside a parallel region runs single-threaded.
  // oneDNN's row-major interface takes each operand's op and leading dimension as they are
  // (it makes the same swap).
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto j = static_cast<size_t>(i);
      if constexpr (std::is_same_v<T, float>) {
        if (onednn) {
          onednn_sgemm(oa.op, ob.op, m, n, k, ap + a_off[j], lda, bp + b_off[j], ldb, cp + c_off[j],
                       ldc);
          continue;
        }
      }
      gemm(&ob.op, &oa.op, &in, &im, &ik, &one, bp + b_off[j], &ldb, ap + a_off[j], &lda, &zero,
           cp + c_off[j], &ldc, 1, 1);
    }
  });
  return c;
}

// The kernel for a B by the operands' dtype (kNone: torch::matmul). bf16 operands take oneDNN's
// bf16 GEMM whatever autocast says (the backward of a bf16 product is bf16); fp32 and fp64 under
// autocast are left to it (batched_matmul casts them first where the bf16 path applies).
Kernel kernel_for(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined() || !b.defined() || a.dim() < 3 || a.dim() != b.dim()) return Kernel::kNone;
  if (!a.device().is_cpu() || !b.device().is_cpu() || a.scalar_type() != b.scalar_type())
    return Kernel::kNone;
  if (a.layout() != torch::kStrided || b.layout() != torch::kStrided) return Kernel::kNone;
  if (a.is_conj() || b.is_conj() || a.is_neg() || b.is_neg()) return Kernel::kNone;
  for (int64_t d = 0; d + 2 < a.dim(); ++d)
    if (a.size(d) != b.size(d)) return Kernel::kNone;
  if (a.size(-1) != b.size(-2) || !fits_int(a) || !fits_int(b)) return Kernel::kNone;
  if (!operand(a).ok || !operand(b).ok) return Kernel::kNone;
  switch (a.scalar_type()) {
    case torch::kBFloat16:
      return bf16_linear_kernel() == Bf16LinearKernel::kOnednn && onednn_bf16_gemm_available()
                 ? Kernel::kOnednnBf16
                 : Kernel::kNone;
    case torch::kFloat32:
      if (at::autocast::is_cpu_enabled()) return Kernel::kNone;  // autocast decides the dtype
      if (fp32_linear_kernel() == Fp32LinearKernel::kOnednn && onednn_sgemm_available())
        return Kernel::kOnednnFp32;
      return blas_gemm<float>() != nullptr ? Kernel::kBlas : Kernel::kNone;
    case torch::kFloat64:
      if (at::autocast::is_cpu_enabled()) return Kernel::kNone;
      return blas_gemm<double>() != nullptr ? Kernel::kBlas : Kernel::kNone;
    default:
      return Kernel::kNone;
  }
}

// A B, laid out as `layout` where it can be (blas_bmm); a layout whose matrices are column-major
// is met by computing (A B)^T = B^T A^T row-major into its transpose.
torch::Tensor raw(const torch::Tensor& a, const torch::Tensor& b,
                  const torch::Tensor& layout = {}) {
  const Kernel kernel = kernel_for(a, b);
  if (kernel == Kernel::kNone) return torch::matmul(a, b);
  if (layout.defined() && !row_major_layout(layout) && layout.dim() >= 3 &&
      row_major_layout(layout.transpose(-1, -2)))
    return raw(b.transpose(-1, -2), a.transpose(-1, -2), layout.transpose(-1, -2))
        .transpose(-1, -2);
  return a.scalar_type() == torch::kFloat64 ? blas_bmm<double>(a, b, layout, kernel)
                                            : blas_bmm<float>(a, b, layout, kernel);
}

// d(AB)/dA = G B^T, d(AB)/dB = A^T G, through the same strided products (transposes are views),
// each gradient laid out as its input: the heads' views of a [B, T, H * d] projection get their
// gradients in that projection's layout, so the views' backward (transpose, then view) copies
// nothing.
struct BatchedMatmulFunction : torch::autograd::Function<BatchedMatmulFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& a,
                               const torch::Tensor& b, const torch::Tensor& layout) {
    ctx->save_for_backward({a, b});
    return raw(a, b, layout.numel() > 0 ? layout : torch::Tensor());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& a = saved[0];
    const torch::Tensor& b = saved[1];
    const torch::Tensor& g = grads[0];
    torch::Tensor ga, gb;
    if (ctx->needs_input_grad(0)) ga = raw(g, b.transpose(-1, -2), a);
    if (ctx->needs_input_grad(1)) gb = raw(a.transpose(-1, -2), g, b);
    return {ga, gb, torch::Tensor()};
  }
};

// Under bf16 autocast, where oneDNN's bf16 GEMM takes the product: a and b rounded to bf16, as
// autocast rounds torch::matmul's operands.
bool autocast_to_bf16(const torch::Tensor& a, const torch::Tensor& b) {
  if (!at::autocast::is_cpu_enabled() || at::autocast::get_autocast_cpu_dtype() != torch::kBFloat16)
    return false;
  if (!a.defined() || !b.defined()) return false;
  for (const torch::Tensor* t : {&a, &b})
    if (t->scalar_type() != torch::kFloat32 && t->scalar_type() != torch::kBFloat16) return false;
  return bf16_linear_kernel() == Bf16LinearKernel::kOnednn && onednn_bf16_gemm_available();
}

}  // namespace

bool batched_matmul_uses_blas(const torch::Tensor& a, const torch::Tensor& b) {
  if (autocast_to_bf16(a, b))
    return kernel_for(a.to(torch::kBFloat16), b.to(torch::kBFloat16)) != Kernel::kNone;
  return kernel_for(a, b) != Kernel::kNone;
}

torch::Tensor batched_matmul(const torch::Tensor& a_in, const torch::Tensor& b_in,
                             const torch::Tensor& layout) {
  const bool round = autocast_to_bf16(a_in, b_in);
  const torch::Tensor a = round ? a_in.to(torch::kBFloat16) : a_in;
  const torch::Tensor b = round ? b_in.to(torch::kBFloat16) : b_in;
  if (kernel_for(a, b) == Kernel::kNone) return torch::matmul(a_in, b_in);
  if (!torch::GradMode::is_enabled() || (!a.requires_grad() && !b.requires_grad()))
    return raw(a, b, layout);
  // "no layout": the empty stand-in (nn/stand_in.h).
  return BatchedMatmulFunction::apply(a, b, layout.defined() ? layout.detach() : absent_input());
}

}  // namespace compacter::nn

// Strided batched gemm on the CPU's BLAS (see batched_matmul.h).
#include "compacter/nn/batched_matmul.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <dlfcn.h>

#include <climits>

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

// Whether a tensor laid out as `layout` can hold the product row by row: its matrices row-major
// (unit column stride, row stride at least the width, within int) and no two elements sharing
// memory with any gap (non-overlapping and dense, so empty_like keeps its strides).
bool row_major_layout(const torch::Tensor& layout) {
  if (!layout.defined() || layout.dim() < 3 || !layout.is_non_overlapping_and_dense()) return false;
  const int64_t cols = layout.size(-1);
  return (layout.stride(-1) == 1 || cols == 1) && layout.stride(-2) >= std::max<int64_t>(cols, 1) &&
         layout.stride(-2) <= INT_MAX;
}

// C = A B into a new tensor with `layout`'s strides when row_major_layout(layout) and layout has
// C's sizes, else a contiguous one.
template <typename T>
torch::Tensor blas_bmm(const torch::Tensor& a, const torch::Tensor& b,
                       const torch::Tensor& layout) {
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
  const T* ap = a.data_ptr<T>();
  const T* bp = b.data_ptr<T>();
  T* cp = c.data_ptr<T>();
  const Gemm<T> gemm = blas_gemm<T>();
  // Row-major C = A B is column-major C^T = B^T A^T: gemm(opB, opA, n, m, k, B, A, C with ld =
  // C's row stride).
  const int in = static_cast<int>(n), im = static_cast<int>(m), ik = static_cast<int>(k);
  const int lda = static_cast<int>(oa.ld), ldb = static_cast<int>(ob.ld);
  const int ldc = static_cast<int>(m == 1 ? std::max<int64_t>(n, 1) : c.stride(-2));
  const T one = 1, zero = 0;
  const int64_t count = static_cast<int64_t>(a_off.size());
  // One matrix per task: a BLAS called inside a parallel region runs single-threaded.
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto j = static_cast<size_t>(i);
      gemm(&ob.op, &oa.op, &in, &im, &ik, &one, bp + b_off[j], &ldb, ap + a_off[j], &lda, &zero,
           cp + c_off[j], &ldc, 1, 1);
    }
  });
  return c;
}

bool blas_path(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined() || !b.defined() || a.dim() < 3 || a.dim() != b.dim()) return false;
  if (!a.device().is_cpu() || !b.device().is_cpu() || a.scalar_type() != b.scalar_type())
    return false;
  if (a.scalar_type() != torch::kFloat32 && a.scalar_type() != torch::kFloat64) return false;
  if (at::autocast::is_cpu_enabled()) return false;  // autocast decides the products' dtype
  if (a.is_conj() || b.is_conj() || a.is_neg() || b.is_neg()) return false;
  for (int64_t d = 0; d + 2 < a.dim(); ++d)
    if (a.size(d) != b.size(d)) return false;
  if (a.size(-1) != b.size(-2) || !fits_int(a) || !fits_int(b)) return false;
  if (!operand(a).ok || !operand(b).ok) return false;
  return a.scalar_type() == torch::kFloat32 ? blas_gemm<float>() != nullptr
                                            : blas_gemm<double>() != nullptr;
}

// A B, laid out as `layout` where it can be (blas_bmm); a layout whose matrices are column-major
// is met by computing (A B)^T = B^T A^T row-major into its transpose.
torch::Tensor raw(const torch::Tensor& a, const torch::Tensor& b,
                  const torch::Tensor& layout = {}) {
  if (!blas_path(a, b)) return torch::matmul(a, b);
  if (layout.defined() && !row_major_layout(layout) && layout.dim() >= 3 &&
      row_major_layout(layout.transpose(-1, -2)))
    return raw(b.transpose(-1, -2), a.transpose(-1, -2), layout.transpose(-1, -2))
        .transpose(-1, -2);
  return a.scalar_type() == torch::kFloat32 ? blas_bmm<float>(a, b, layout)
                                            : blas_bmm<double>(a, b, layout);
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

}  // namespace

bool batched_matmul_uses_blas(const torch::Tensor& a, const torch::Tensor& b) {
  return blas_path(a, b);
}

torch::Tensor batched_matmul(const torch::Tensor& a, const torch::Tensor& b,
                             const torch::Tensor& layout) {
  if (!blas_path(a, b)) return torch::matmul(a, b);
  if (!torch::GradMode::is_enabled() || (!a.requires_grad() && !b.requires_grad()))
    return raw(a, b, layout);
  // "no layout": the empty stand-in (nn/stand_in.h).
  return BatchedMatmulFunction::apply(a, b, layout.defined() ? layout.detach() : absent_input());
}

}  // namespace compacter::nn

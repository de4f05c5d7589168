// T5's RMS layer norm, fused on the CPU for fp32 (see rms_norm.h). Compiled outside the unity
// batches with -ffp-contract=off (CMakeLists.txt), so that the AVX-512 clone of each loop forms
// no fused multiply-add and gives the baseline's results bit for bit (nn/cpu_clones.h).
#include "compacter/nn/rms_norm.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cmath>

#include "compacter/nn/cpu_clones.h"

namespace compacter::nn {

namespace {

// Sums of products over a row in double, in kLanes interleaved partial sums (a fixed order the
// compiler vectorises without reassociating anything).
constexpr int kLanes = 8;

inline double dot_row(const float* a, const float* b, int64_t n) {
  double lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l)
      lane[l] += static_cast<double>(a[j + l]) * static_cast<double>(b[j + l]);
  double sum = 0.0;
  for (; j < n; ++j) sum += static_cast<double>(a[j]) * static_cast<double>(b[j]);
  for (int l = 0; l < kLanes; ++l) sum += lane[l];
  return sum;
}

// Rows [begin, end) of x [rows, n]: r[i] = 1 / sqrt(mean(x_i^2) + eps) (in double, then fp32),
// y_i = (x_i * r[i]) * g, in HF's order of the two products.
COMPACTER_CPU_CLONES
void forward_rows(const float* x, const float* g, float* y, float* r, int64_t begin, int64_t end,
                  int64_t n, double eps) {
  for (int64_t i = begin; i < end; ++i) {
    const float* xi = x + i * n;
    float* yi = y + i * n;
    const float ri =
        static_cast<float>(1.0 / std::sqrt(dot_row(xi, xi, n) / static_cast<double>(n) + eps));
    r[i] = ri;
    for (int64_t j = 0; j < n; ++j) yi[j] = (xi[j] * ri) * g[j];
  }
}

// Rows [begin, end) of the backward: with dh = dy * g, dx_i = r dh - x_i (r^3 / n) sum(dh x_i)
// (when dx is not null), and dg_part += dy * (x_i * r) (when dg_part is not null; fp32 over the
// chunk's rows).
COMPACTER_CPU_CLONES
void backward_rows(const float* x, const float* g, const float* r, const float* dy, float* dx,
                   float* dg_part, int64_t begin, int64_t end, int64_t n, float* dh) {
  for (int64_t i = begin; i < end; ++i) {
    const float* xi = x + i * n;
    const float* dyi = dy + i * n;
    const float ri = r[i];
    if (dx) {
      for (int64_t j = 0; j < n; ++j) dh[j] = dyi[j] * g[j];
      const double ri3 = static_cast<double>(ri) * ri * ri;
      const auto c = static_cast<float>(ri3 / static_cast<double>(n) * dot_row(dh, xi, n));
      float* dxi = dx + i * n;
      for (int64_t j = 0; j < n; ++j) dxi[j] = ri * dh[j] - xi[j] * c;
    }
    if (dg_part)
      for (int64_t j = 0; j < n; ++j) dg_part[j] += dyi[j] * (xi[j] * ri);
  }
}

// The weight's gradient is summed over a fixed number of row chunks (each chunk in order, then
// the chunks in order), so it does not depend on how many threads ran them.
constexpr int64_t kChunks = 64;

int64_t chunk_begin(int64_t c, int64_t chunks, int64_t rows) {
  return c * rows / chunks;
}

// Rows per parallel task in the forward: about 16K values.
int64_t row_grain(int64_t n) {
  return std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(n, 1));
}

class FusedRmsNorm : public torch::autograd::Function<FusedRmsNorm> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& weight, double eps) {
    // Named for libtorch's profiler (bench --profile), which sees no aten operator here.
    RECORD_FUNCTION("compacter::rms_norm", c10::ArrayRef<const c10::IValue>{});
    const torch::Tensor x = x_in.contiguous();
    const torch::Tensor g = weight.contiguous();
    const int64_t n = x.size(-1), rows = x.numel() / n;
    torch::Tensor y = torch::empty_like(x);
    torch::Tensor r = torch::empty({rows}, x.options());
    const float* xp = x.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    float* rp = r.data_ptr<float>();
    at::parallel_for(0, rows, row_grain(n), [&](int64_t begin, int64_t end) {
      forward_rows(xp, gp, yp, rp, begin, end, n, eps);
    });
    ctx->save_for_backward({x, g, r});
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    RECORD_FUNCTION("compacter::rms_norm_backward", c10::ArrayRef<const c10::IValue>{});
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& g = saved[1];
    const torch::Tensor& r = saved[2];
    const torch::Tensor dy = grads[0].contiguous();
    const int64_t n = x.size(-1), rows = x.numel() / n;
    const bool want_dx = ctx->needs_input_grad(0), want_dg = ctx->needs_input_grad(1);
    const int64_t chunks = std::min(kChunks, std::max<int64_t>(rows, 1));
    torch::Tensor dx = want_dx ? torch::empty_like(x) : torch::Tensor();
    torch::Tensor parts = want_dg ? torch::zeros({chunks, n}, x.options()) : torch::Tensor();
    // dh = dy * g, one row per chunk, for dx only.
    torch::Tensor scratch = want_dx ? torch::empty({chunks, n}, x.options()) : torch::Tensor();
    const float* xp = x.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    const float* rp = r.data_ptr<float>();
    const float* dyp = dy.data_ptr<float>();
    float* dxp = want_dx ? dx.data_ptr<float>() : nullptr;
    float* partp = want_dg ? parts.data_ptr<float>() : nullptr;
    float* dhp = want_dx ? scratch.data_ptr<float>() : nullptr;
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c)
        backward_rows(xp, gp, rp, dyp, dxp, partp ? partp + c * n : nullptr,
                      chunk_begin(c, chunks, rows), chunk_begin(c + 1, chunks, rows), n,
                      dhp ? dhp + c * n : nullptr);
    });
    torch::Tensor dg;
    if (want_dg) dg = parts.to(torch::kFloat64).sum(0).to(torch::kFloat32).view_as(g);
    return {dx, dg, torch::Tensor()};
  }
};

}  // namespace

bool rms_norm_fused_applies(const torch::Tensor& x, const torch::Tensor& weight) {
  return x.defined() && weight.defined() && x.device().is_cpu() && weight.device().is_cpu() &&
         x.layout() == torch::kStrided && weight.layout() == torch::kStrided &&
         x.scalar_type() == torch::kFloat32 && weight.scalar_type() == torch::kFloat32 &&
         x.dim() >= 1 && weight.dim() == 1 && x.size(-1) == weight.size(0) && x.numel() > 0 &&
         !x.is_conj() && !x.is_neg() && !weight.is_neg();
}

torch::Tensor rms_norm_composite(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  // HF computes the variance in float32; float64 stays float64 (finite-difference tests need it).
  // mean(x^2) as ATen's CPU mean computes it, sum then divide by the count: the same floats, but
  // libtorch 1.13's MeanBackward keeps its whole input (here x^2, one activation per norm) for
  // the backward, while SumBackward keeps only the sizes.
  const int64_t width = x.size(-1);
  torch::Tensor variance = x.to(torch::promote_types(x.scalar_type(), torch::kFloat32))
                               .pow(2)
                               .sum(-1, /*keepdim=*/true) /
                           static_cast<double>(width);
  torch::Tensor h = x * torch::rsqrt(variance + eps);
  const torch::ScalarType dtype = weight.scalar_type();
  if (dtype == torch::kBFloat16 || dtype == torch::kHalf) h = h.to(dtype);
  return weight * h;
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  if (rms_norm_fused_applies(x, weight)) return FusedRmsNorm::apply(x, weight, eps);
  return rms_norm_composite(x, weight, eps);
}

torch::Tensor rms_normalise(const torch::Tensor& x, double eps, torch::ScalarType weight_dtype) {
  // A weight of ones: (x r) 1 = x r exactly, in the fused kernel and in the composite one.
  return rms_norm(x, torch::ones({x.size(-1)}, x.options().dtype(weight_dtype)), eps);
}

}  // namespace compacter::nn

// Fused cross-entropy on the CPU (see cross_entropy.h).
#include "compacter/nn/cross_entropy.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/nn/cpu_clones.h"
#include "compacter/nn/exp_approx.h"
#include "compacter/nn/row_max.h"

namespace compacter::nn {

namespace {

constexpr int kLanes = 16;  // partial sums: one AVX-512 register of fp32

// log sum_j exp(x_j) over one row of n logits: the maximum m, then m + log(sum exp(x_j - m)).
// The partial sums make the order of the additions the same on every CPU and in both clones.
COMPACTER_CPU_CLONES
float row_log_sum_exp(const float* x, int64_t n) {
  const float m = row_max(x, n);
  float sum[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) sum[l] += exp_approx(x[j + l] - m);
  double s = 0.0;
  for (int l = 0; l < kLanes; ++l) s += sum[l];
  for (int64_t t = j; t < n; ++t) s += exp_approx(x[t] - m);
  // A NaN anywhere makes a term NaN; an infinite maximum makes x - m NaN (inf - inf), as in
  // libtorch's log_softmax.
  return m + static_cast<float>(std::log(s));
}

// One row of the gradient: out_j = exp(x_j - lse) * coef, minus coef at the label.
COMPACTER_CPU_CLONES
void row_gradient(const float* x, float lse, float coef, int64_t label, float* out, int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] = exp_approx(x[j] - lse) * coef;
  out[label] -= coef;
}

class CrossEntropy : public torch::autograd::Function<CrossEntropy> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logits,
                               const torch::Tensor& labels, int64_t ignore_index) {
    RECORD_FUNCTION("compacter::cross_entropy", c10::ArrayRef<const c10::IValue>{});
    const torch::Tensor x = logits.contiguous();
    const torch::Tensor y = labels.contiguous();
    const int64_t rows = x.size(0), n = x.size(1);
    const int64_t* lp = y.data_ptr<int64_t>();
    int64_t kept = 0;
    for (int64_t r = 0; r < rows; ++r) {
      if (lp[r] == ignore_index) continue;
      check(lp[r] >= 0 && lp[r] < n, "cross-entropy: label ", lp[r], " of row ", r,
            " is outside the vocabulary [0, ", n, ") and is not ignore_index (", ignore_index, ")");
      ++kept;
    }
    torch::Tensor lse = torch::empty({rows}, x.options());
    std::vector<double> loss(static_cast<size_t>(rows), 0.0);
    const float* xp = x.data_ptr<float>();
    float* lsep = lse.data_ptr<float>();
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        if (lp[r] == ignore_index) continue;
        lsep[r] = row_log_sum_exp(xp + r * n, n);
        loss[static_cast<size_t>(r)] =
            static_cast<double>(lsep[r]) - static_cast<double>(xp[r * n + lp[r]]);
      }
    });
    double total = 0.0;
    for (double l : loss) total += l;
    ctx->save_for_backward({x, y, lse});
    ctx->saved_data["kept"] = kept;
    ctx->saved_data["ignore_index"] = ignore_index;
    // 0 / 0 is NaN when every row is ignored, as PyTorch's mean.
    return torch::scalar_tensor(total / static_cast<double>(kept), x.options());
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    RECORD_FUNCTION("compacter::cross_entropy_backward", c10::ArrayRef<const c10::IValue>{});
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& y = saved[1];
    const torch::Tensor& lse = saved[2];
    const int64_t kept = ctx->saved_data["kept"].toInt();
    const int64_t ignore_index = ctx->saved_data["ignore_index"].toInt();
    const int64_t rows = x.size(0), n = x.size(1);
    const float coef = grads[0].item<float>() / static_cast<float>(kept);
    torch::Tensor out = torch::empty_like(x, torch::MemoryFormat::Contiguous);
    const float* xp = x.data_ptr<float>();
    const int64_t* lp = y.data_ptr<int64_t>();
    const float* lsep = lse.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        if (lp[r] == ignore_index)
          std::fill(op + r * n, op + (r + 1) * n, 0.0f);
        else
          row_gradient(xp + r * n, lsep[r], coef, lp[r], op + r * n, n);
      }
    });
    return {out, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels,
                            int64_t ignore_index) {
  check(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0),
        "cross-entropy needs logits [rows, vocabulary] and labels [rows], got logits ",
        logits.sizes(), " and labels ", labels.sizes());
  if (!logits.device().is_cpu() || logits.scalar_type() != torch::kFloat32 ||
      labels.scalar_type() != torch::kLong || !labels.device().is_cpu() || logits.size(1) == 0)
    return torch::nn::functional::cross_entropy(
        logits, labels,
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(ignore_index));
  return CrossEntropy::apply(logits, labels, ignore_index);
}

torch::Tensor log_softmax_at(const torch::Tensor& scores, const torch::Tensor& chosen) {
  check(scores.dim() == 2 && chosen.dim() == 1 && chosen.size(0) == scores.size(0),
        "log_softmax_at needs scores [rows, vocabulary] and chosen tokens [rows], got scores ",
        scores.sizes(), " and chosen ", chosen.sizes());
  const torch::Tensor c = chosen.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t rows = scores.size(0), n = scores.size(1);
  const int64_t* cp = c.data_ptr<int64_t>();
  for (int64_t r = 0; r < rows; ++r)
    check(cp[r] >= 0 && cp[r] < n, "log_softmax_at: the token chosen in row ", r, ", ", cp[r],
          ", is outside the vocabulary [0, ", n, ")");
  if (!scores.device().is_cpu() || scores.scalar_type() != torch::kFloat32)
    return torch::log_softmax(scores, -1)
        .gather(1, c.to(scores.device()).unsqueeze(1))
        .squeeze(1)
        .to(torch::kFloat32);
  RECORD_FUNCTION("compacter::log_softmax_at", c10::ArrayRef<const c10::IValue>{});
  const torch::Tensor x = scores.contiguous();
  torch::Tensor out = torch::empty({rows}, x.options());
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      op[r] = xp[r * n + cp[r]] - row_log_sum_exp(xp + r * n, n);
  });
  return out;
}

}  // namespace compacter::nn

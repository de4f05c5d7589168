// Fused softmax and dropout of the attention weights (see softmax_dropout.h).
#include "compacter/nn/softmax_dropout.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/nn/cpu_clones.h"
#include "compacter/nn/dropout.h"
#include "compacter/nn/dropout_hash.h"
#include "compacter/nn/exp_approx.h"
#include "compacter/nn/row_max.h"
#include "compacter/nn/stand_in.h"

namespace compacter::nn {

namespace {

namespace dh = dropout_hash;

constexpr int kLanes = 16;  // partial sums: one AVX-512 register of fp32

// One row of k weights: p = softmax(s + b) into `probs`; out = p * scale where kept, else 0; pass
// records which were kept. z is the hash argument of the row's first element. The partial sums
// make the additions' order the same on every CPU and in both clones.
COMPACTER_CPU_CLONES
void softmax_dropout_row(const float* s, const float* b, float* probs, float* out, bool* pass,
                         int64_t k, uint64_t z, uint64_t threshold, float scale) {
  for (int64_t j = 0; j < k; ++j) probs[j] = b ? s[j] + b[j] : s[j];
  const float m = row_max(probs, k);
  float sum[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= k; j += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float e = exp_approx(probs[j + l] - m);
      probs[j + l] = e;
      sum[l] += e;
    }
  float total = 0.0f;
  for (float v : sum) total += v;
  for (int64_t t = j; t < k; ++t) {
    probs[t] = exp_approx(probs[t] - m);
    total += probs[t];
  }
  const float inv = 1.0f / total;
  for (j = 0; j < k; ++j, z += dh::kGolden) {
    const float pj = probs[j] * inv;
    probs[j] = pj;
    const bool keep = dh::keeps(z, threshold);
    out[j] = keep ? pj * scale : 0.0f;
    pass[j] = keep;
  }
}

// One row of the backward: g_p = (g * passed) * scale, then g_s = p * (g_p - sum_j g_p p).
COMPACTER_CPU_CLONES
void softmax_dropout_row_backward(const float* g, const uint8_t* passed, const float* probs,
                                  float* out, int64_t k, float scale) {
  float dot[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= k; j += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float gp = (g[j + l] * static_cast<float>(passed[j + l])) * scale;
      out[j + l] = gp;
      dot[l] += gp * probs[j + l];
    }
  float d = 0.0f;
  for (float v : dot) d += v;
  for (int64_t t = j; t < k; ++t) {
    out[t] = (g[t] * static_cast<float>(passed[t])) * scale;
    d += out[t] * probs[t];
  }
  for (j = 0; j < k; ++j) out[j] = probs[j] * (out[j] - d);
}

// The bias's element offsets for each row of scores [rows, k] (the bias broadcast to scores'
// sizes: its strides over the leading dimensions; unit stride along k).
struct BiasRows {
  std::vector<int64_t> sizes, strides;  // the leading dimensions
  int64_t offset(int64_t row) const {
    int64_t off = 0;
    for (int64_t d = static_cast<int64_t>(sizes.size()) - 1; d >= 0; --d) {
      off += (row % sizes[d]) * strides[d];
      row /= sizes[d];
    }
    return off;
  }
};

class SoftmaxDropout : public torch::autograd::Function<SoftmaxDropout> {
 public:
  // bias: broadcast to scores' sizes with a unit stride along the last dimension, or the empty
  // stand-in for none.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& scores,
                               const torch::Tensor& bias, double p, int64_t seed) {
    RECORD_FUNCTION("compacter::softmax_dropout", c10::ArrayRef<const c10::IValue>{});
    const torch::Tensor s = scores.contiguous();
    const int64_t k = s.size(-1), rows = s.numel() / k;
    torch::Tensor probs = torch::empty_like(s, torch::MemoryFormat::Contiguous);
    torch::Tensor out = torch::empty_like(s, torch::MemoryFormat::Contiguous);
    torch::Tensor passed = torch::empty(s.sizes(), s.options().dtype(torch::kBool));
    const bool has_bias = bias.numel() > 0;
    torch::Tensor expanded;
    BiasRows bias_rows;
    if (has_bias) {
      expanded = bias.expand(s.sizes());
      for (int64_t d = 0; d + 1 < s.dim(); ++d) {
        bias_rows.sizes.push_back(s.size(d));
        bias_rows.strides.push_back(expanded.stride(d));
      }
    }
    const float* sp = s.data_ptr<float>();
    const float* bp = has_bias ? expanded.data_ptr<float>() : nullptr;
    float* pp = probs.data_ptr<float>();
    float* op = out.data_ptr<float>();
    bool* kp = passed.data_ptr<bool>();
    const uint64_t threshold = dh::threshold(p);
    const auto scale = static_cast<float>(1.0 / (1.0 - p));
    const uint64_t base = static_cast<uint64_t>(seed);
    at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / k), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        softmax_dropout_row(sp + r * k, bp ? bp + bias_rows.offset(r) : nullptr, pp + r * k,
                            op + r * k, kp + r * k, k,
                            base + static_cast<uint64_t>(r * k) * dh::kGolden, threshold, scale);
    });
    ctx->save_for_backward({probs, passed});
    ctx->saved_data["p"] = p;
    ctx->saved_data["bias_sizes"] = has_bias ? bias.sizes().vec() : std::vector<int64_t>{};
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    RECORD_FUNCTION("compacter::softmax_dropout_backward", c10::ArrayRef<const c10::IValue>{});
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& probs = saved[0];
    const torch::Tensor& passed = saved[1];
    const torch::Tensor g = grads[0].contiguous();
    const auto scale = static_cast<float>(1.0 / (1.0 - ctx->saved_data["p"].toDouble()));
    const int64_t k = probs.size(-1), rows = probs.numel() / k;
    torch::Tensor gs = torch::empty_like(probs, torch::MemoryFormat::Contiguous);
    const float* gp = g.data_ptr<float>();
    static_assert(sizeof(bool) == 1);  // a bool tensor's bytes are 0 or 1
    const auto* kp = reinterpret_cast<const uint8_t*>(passed.data_ptr<bool>());
    const float* pp = probs.data_ptr<float>();
    float* op = gs.data_ptr<float>();
    at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / k), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        softmax_dropout_row_backward(gp + r * k, kp + r * k, pp + r * k, op + r * k, k, scale);
    });
    torch::Tensor gb;
    if (ctx->needs_input_grad(1)) gb = gs.sum_to_size(ctx->saved_data["bias_sizes"].toIntVector());
    return {gs, gb, torch::Tensor(), torch::Tensor()};
  }
};

bool fuses(const torch::Tensor& scores, const torch::Tensor& bias) {
  if (!scores.device().is_cpu() || scores.scalar_type() != torch::kFloat32 || scores.dim() < 1 ||
      scores.numel() == 0 || scores.layout() != torch::kStrided)
    return false;
  if (!bias.defined()) return true;
  if (!bias.device().is_cpu() || bias.scalar_type() != torch::kFloat32 ||
      bias.layout() != torch::kStrided || bias.dim() > scores.dim())
    return false;
  // Broadcastable to scores without changing them.
  return torch::infer_size(bias.sizes(), scores.sizes()) == scores.sizes().vec();
}

}  // namespace

torch::Tensor softmax_dropout(const torch::Tensor& scores, const torch::Tensor& bias, double p,
                              bool training) {
  if (!training || p == 0.0 || !fuses(scores, bias)) {
    const torch::Tensor s = bias.defined() ? scores + bias : scores;
    // Softmax in at least float32, as HF's scores.float() (float64 stays float64).
    const auto softmax_type = torch::promote_types(s.scalar_type(), torch::kFloat32);
    return nn::dropout(torch::softmax(s.to(softmax_type), -1).to(s.scalar_type()), p, training);
  }
  check(p > 0.0 && p < 1.0, "dropout probability must be in [0, 1), got ", p);
  // The kernel reads each bias row with a unit stride: a bias broadcast along the keys (last size
  // 1, or none) is widened to them, a permuted one copied. Autograd sums the widened gradient back.
  torch::Tensor b = bias.defined() ? bias : absent_input();
  const int64_t k = scores.size(-1);
  if (bias.defined() && k > 1) {
    if (bias.dim() == 0 || bias.size(-1) != k) {
      std::vector<int64_t> sizes = bias.dim() == 0 ? std::vector<int64_t>{1} : bias.sizes().vec();
      sizes.back() = k;
      b = bias.expand(sizes).contiguous();
    } else if (bias.stride(-1) != 1) {
      b = bias.contiguous();
    }
  }
  return SoftmaxDropout::apply(scores, b, p, static_cast<int64_t>(dh::draw_seed()));
}

}  // namespace compacter::nn

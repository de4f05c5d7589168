// Dynamic int8 linear layers through libtorch's quantised oneDNN kernels (see int8_linear.h).
#include "compacter/nn/int8_linear.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "compacter/core/error.h"
#include "compacter/nn/int8_rows.h"
#include "compacter/nn/layers.h"
#include "compacter/nn/t5.h"

namespace compacter::nn {

struct Int8Weight::Packed {
  c10::intrusive_ptr<LinearPackedParamsBase> params;
  // The same values for the few-rows kernel (nn/int8_rows.h), where the CPU has one.
  std::optional<Int8RowsWeight> rows;
  std::vector<float> scales, row_sums;  // fp32 copies for that kernel
};

bool int8_available() {
  const auto& engines = at::globalContext().supportedQEngines();
  return std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) != engines.end();
}

Int8Weight::Int8Weight(const torch::Tensor& weight) : packed_(std::make_unique<Packed>()) {
  check(int8_available(),
        "int8 needs libtorch's quantised oneDNN engine, which this libtorch "
        "lacks (its engines: none usable for int8 linear layers)");
  check(weight.dim() == 2 && weight.device().is_cpu() && weight.scalar_type() == torch::kFloat32,
        "int8: a linear layer's weight must be a 2-D fp32 CPU tensor, got ", weight.sizes(), " ",
        weight.scalar_type(), " on ", weight.device());
  torch::NoGradGuard no_grad;
  const torch::Tensor w = weight.detach().contiguous();
  // Per output row: scale = max |w| / 127 (a zero row gets scale 1), zero point 0.
  torch::Tensor scales = std::get<0>(w.abs().max(1)).to(torch::kDouble) / 127.0;
  scales = torch::where(scales > 0, scales, torch::ones_like(scales));
  const torch::Tensor zeros = torch::zeros({w.size(0)}, torch::kLong);
  const torch::Tensor q = at::quantize_per_channel(w, scales, zeros, 0, torch::kQInt8);
  scales_ = scales;
  out_ = w.size(0);
  in_ = w.size(1);
  at::globalContext().setQEngine(at::QEngine::ONEDNN);
  static const auto prepack = c10::Dispatcher::singleton()
                                  .findSchemaOrThrow("quantized::linear_prepack", "")
                                  .typed<c10::intrusive_ptr<LinearPackedParamsBase>(
                                      at::Tensor, c10::optional<at::Tensor>)>();
  packed_->params = prepack.call(q, c10::nullopt);
  row_sums_ = (q.int_repr().to(torch::kDouble).sum(1) * scales).to(torch::kFloat32);
  bytes_ = static_cast<int64_t>(q.storage().nbytes()) + q.q_per_channel_scales().nbytes() +
           q.q_per_channel_zero_points().nbytes() + out_ * in_ + row_sums_.nbytes();
  if (int8_rows_available()) {
    const torch::Tensor values = q.int_repr().contiguous();
    packed_->rows = pack_int8_rows(values.data_ptr<int8_t>(), out_, in_);
    const torch::Tensor s = scales.to(torch::kFloat32).contiguous();
    packed_->scales.assign(s.data_ptr<float>(), s.data_ptr<float>() + out_);
    packed_->row_sums.assign(row_sums_.data_ptr<float>(), row_sums_.data_ptr<float>() + out_);
    bytes_ += static_cast<int64_t>(packed_->rows->packed.size()) + 4 * out_;
  }
}

Int8Weight::~Int8Weight() = default;

torch::Tensor Int8Weight::int8_values() const {
  return std::get<0>(packed_->params->unpack()).int_repr();
}

torch::Tensor Int8Weight::forward(const torch::Tensor& x) const {
  check(!(torch::GradMode::is_enabled() && x.requires_grad()),
        "int8 linear layers are for inference: no gradients flow through them (train in fp32 or "
        "autocast-bf16)");
  check(x.device().is_cpu() && x.scalar_type() == torch::kFloat32,
        "int8 linear layers take fp32 CPU inputs, got ", x.scalar_type(), " on ", x.device());
  const int64_t in = x.size(-1);
  std::vector<int64_t> sizes(x.sizes().begin(), x.sizes().end());
  const torch::Tensor rows = x.reshape({-1, in}).contiguous();
  torch::Tensor y;
  const int64_t m = rows.size(0);
  if (m <= kInt8ShiftRows && rows.numel() > 0) {
    // Onto [0, 255] and back (int8_linear.h); a constant or non-finite input takes the plain path.
    const bool own = packed_->rows.has_value();
    float lo = 0, hi = 0;
    if (own) {
      int8_rows_range(rows.data_ptr<float>(), rows.numel(), lo, hi);
    } else {
      const auto [lo_t, hi_t] = torch::aminmax(rows);
      lo = lo_t.item<float>();
      hi = hi_t.item<float>();
    }
    const float c = 255.0001f / (hi - lo);
    if (std::isfinite(lo) && std::isfinite(hi) && hi > lo && std::isfinite(c)) {
      if (own) {  // the library's kernel: the same grid, one pass over the weight (int8_rows.h)
        y = torch::empty({m, out_});
        int8_rows_product(*packed_->rows, rows.data_ptr<float>(), m, lo, c, packed_->scales.data(),
                          packed_->row_sums.data(), y.data_ptr<float>());
      } else {
        const torch::Tensor shifted = (rows - lo).mul_(c).clamp_(0.0, 255.0);
        y = packed_->params->apply_dynamic(shifted, /*reduce_range=*/false)
                .div_(c)
                .add_(row_sums_, lo);
      }
    }
  }
  if (!y.defined()) y = packed_->params->apply_dynamic(rows, /*reduce_range=*/false);
  sizes.back() = y.size(-1);
  return y.view(sizes);
}

bool keeps_fp32(const std::string& path) {
  const std::string wo = ".wo";
  return path.size() >= wo.size() && path.compare(path.size() - wo.size(), wo.size(), wo) == 0;
}

namespace {

// Refuses a model that recomputes its backbone's weights at every forward pass: quantised copies
// of them would go stale. `who`: what the message blames; `advice`: appended.
void refuse_recomputed_weights(const T5ModelImpl& model, const char* who, const char* advice) {
  check(!model.before_forward, "int8: ", who,
        " recomputes the backbone's weights at every forward pass (a reparameterised backbone); "
        "quantised copies of them would go stale",
        advice);
}

// Quantises `linear` (at `path`) into its own int8 copy; its weight must be fp32 on the CPU.
void quantize_own(const std::string& path, LinearImpl& linear) {
  check(linear.weight.device().is_cpu() && linear.weight.scalar_type() == torch::kFloat32,
        "int8: ", path, " is ", linear.weight.scalar_type(), " on ", linear.weight.device(),
        " (int8 quantises an fp32 model on the CPU)");
  linear.set_int8(std::make_shared<Int8Weight>(linear.weight));
}

}  // namespace

int64_t quantize_linears_int8(T5ModelImpl& model, Fp32Weights fp32) {
  refuse_recomputed_weights(model, "this model", "");
  int64_t count = 0;
  model.for_each_linear([&](const std::string& path, LinearImpl& linear) {
    if (keeps_fp32(path)) return;
    quantize_own(path, linear);
    if (fp32 == Fp32Weights::kFree) linear.free_fp32_weight();
    ++count;
  });
  return count;
}

int64_t share_int8(T5ModelImpl& base, T5ModelImpl& model) {
  std::map<std::string, LinearImpl*> quantised;
  base.for_each_linear([&](const std::string& path, LinearImpl& linear) {
    if (linear.is_int8()) quantised.emplace(path, &linear);
  });
  if (quantised.empty()) return 0;
  refuse_recomputed_weights(model, "this adapter's method", " (serve it with --dtype fp32)");
  int64_t own = 0;
  model.for_each_linear([&](const std::string& path, LinearImpl& linear) {
    const auto it = quantised.find(path);
    if (it == quantised.end()) return;
    const torch::Tensor& from = it->second->weight;
    const bool shared =
        linear.weight.is_same(from) ||
        (linear.weight.data_ptr() == from.data_ptr() && linear.weight.sizes() == from.sizes() &&
         linear.weight.strides() == from.strides() &&
         linear.weight.scalar_type() == from.scalar_type());
    if (shared) {
      linear.set_int8(it->second->int8());
    } else {
      quantize_own(path, linear);
      ++own;
    }
  });
  return own;
}

}  // namespace compacter::nn

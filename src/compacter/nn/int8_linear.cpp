// Dynamic int8 linear layers through libtorch's quantised oneDNN kernels (see int8_linear.h).
#include "compacter/nn/int8_linear.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/nn/int8_row_map.h"
#include "compacter/nn/int8_rows.h"
#include "compacter/nn/layers.h"
#include "compacter/nn/t5.h"

namespace compacter::nn {

struct Int8Weight::Packed {
  // One engine's copy of the int8 values: the library's kernel's where the CPU has AVX-512 VNNI
  // (nn/int8_rows.h; with fp32 scales), else oneDNN's through libtorch.
  std::optional<Int8RowsWeight> rows;
  std::vector<float> scales;
  c10::intrusive_ptr<LinearPackedParamsBase> params;
};

bool onednn_int8_available() {
  const auto& engines = at::globalContext().supportedQEngines();
  return std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) != engines.end();
}

namespace {

c10::intrusive_ptr<LinearPackedParamsBase> onednn_prepack(const torch::Tensor& q) {
  at::globalContext().setQEngine(at::QEngine::ONEDNN);
  static const auto prepack = c10::Dispatcher::singleton()
                                  .findSchemaOrThrow("quantized::linear_prepack", "")
                                  .typed<c10::intrusive_ptr<LinearPackedParamsBase>(
                                      at::Tensor, c10::optional<at::Tensor>)>();
  return prepack.call(q, c10::nullopt);
}

// One product whose u8 x s8 pair sums (2 x 255 x 127 = 64,770) exceed int16: 64 inputs of 255
// (the engine's range [0, 255]: scale 1) times a weight row of 1 (int8 127, scale 1 / 127) is
// 255 x 64 = 16,320 exactly; saturated pair sums give 32 x 32,767 / 127 = 8,256.
bool probe_saturation() {
  torch::NoGradGuard no_grad;
  const int64_t k = 64;
  const torch::Tensor q =
      at::quantize_per_channel(torch::ones({1, k}), torch::full({1}, 1.0 / 127, torch::kDouble),
                               torch::zeros({1}, torch::kLong), 0, torch::kQInt8);
  const float y =
      onednn_prepack(q)->apply_dynamic(torch::full({1, k}, 255.0f), false).item<float>();
  return std::abs(y - 255.0f * static_cast<float>(k)) > 0.5f;
}

}  // namespace

bool onednn_int8_saturates() {
  static const bool saturates = onednn_int8_available() && probe_saturation();
  return saturates;
}

namespace {
std::atomic<bool> g_seven_bits_forced{false};
std::atomic<Int8Engine> g_auto_engine{Int8Engine::kAuto};
}  // namespace

void set_int8_auto_engine(Int8Engine engine) {
  check(engine != Int8Engine::kKernel, "set_int8_auto_engine: kAuto or kOneDnn");
  g_auto_engine.store(engine);
}

void set_onednn_int8_seven_bits(bool forced) {
  g_seven_bits_forced.store(forced);
}

int onednn_int8_levels() {
  return onednn_int8_saturates() || g_seven_bits_forced.load() ? 127 : 255;
}

bool int8_available() {
  return int8_rows_available() || onednn_int8_available();
}

Int8Weight::Int8Weight(const torch::Tensor& weight, Int8Engine engine)
    : packed_(std::make_unique<Packed>()) {
  check(int8_available(),
        "int8 needs a CPU with AVX-512 VNNI or libtorch's quantised oneDNN engine; this machine "
        "has neither");
  if (engine == Int8Engine::kAuto) engine = g_auto_engine.load();
  check(engine != Int8Engine::kKernel || int8_rows_available(),
        "int8: the library's kernel needs a CPU with AVX-512 VNNI");
  check(engine != Int8Engine::kOneDnn || onednn_int8_available(),
        "int8: this libtorch has no quantised oneDNN engine");
  const bool kernel =
      engine == Int8Engine::kKernel || (engine == Int8Engine::kAuto && int8_rows_available());
  check(weight.dim() == 2 && weight.size(0) > 0 && weight.size(1) > 0 && weight.device().is_cpu() &&
            weight.scalar_type() == torch::kFloat32,
        "int8: a linear layer's weight must be a non-empty 2-D fp32 CPU tensor, got ",
        weight.sizes(), " ", weight.scalar_type(), " on ", weight.device());
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
  row_sums_ = (q.int_repr().to(torch::kDouble).sum(1) * scales).to(torch::kFloat32);
  if (kernel) {
    const torch::Tensor values = q.int_repr().contiguous();
    packed_->rows = pack_int8_rows(values.data_ptr<int8_t>(), out_, in_);
    const torch::Tensor s = scales.to(torch::kFloat32).contiguous();
    packed_->scales.assign(s.data_ptr<float>(), s.data_ptr<float>() + out_);
    bytes_ = static_cast<int64_t>(packed_->rows->packed.size()) + scales_.nbytes() + 4 * out_ +
             row_sums_.nbytes();
    return;
  }
  packed_->params = onednn_prepack(q);
  bytes_ = static_cast<int64_t>(q.storage().nbytes()) + q.q_per_channel_scales().nbytes() +
           q.q_per_channel_zero_points().nbytes() + out_ * in_ + row_sums_.nbytes();
}

Int8Weight::~Int8Weight() = default;

torch::Tensor Int8Weight::int8_values() const {
  if (packed_->rows) {
    const std::vector<int8_t> values = unpack_int8_rows(*packed_->rows);
    return torch::tensor(values, torch::kInt8).view({out_, in_});
  }
  return std::get<0>(packed_->params->unpack()).int_repr();
}

namespace {

// c of the grid lo + j / c, j = 0..levels, over [lo, hi] (int8_linear.h); 0 where there is none
// (a constant or non-finite range).
float grid_scale(float lo, float hi, int levels = 255) {
  const float c = (static_cast<float>(levels) + 0.0001f) / (hi - lo);
  return std::isfinite(lo) && std::isfinite(hi) && hi > lo && std::isfinite(c) ? c : 0.0f;
}

// The library's kernel, each row over its own range (int8_linear.h). A constant row is exact
// (u = 0, y = lo * row sums); a row holding NaN or an infinity gives NaN throughout.
torch::Tensor rows_product(const Int8RowsWeight& w, const std::vector<float>& scales,
                           const torch::Tensor& row_sums, const torch::Tensor& rows) {
  const int64_t m = rows.size(0), in = rows.size(1);
  torch::Tensor y = torch::empty({m, w.out});
  if (m == 0) return y;
  std::vector<float> lo(static_cast<size_t>(m)), c(lo.size());
  std::vector<int64_t> non_finite;
  const float* x = rows.data_ptr<float>();
  for (int64_t i = 0; i < m; ++i) {
    float l = 0, h = 0;
    int8_rows_range(x + i * in, in, l, h);
    if (!std::isfinite(l) || !std::isfinite(h)) {
      non_finite.push_back(i);
      l = h = 0;
    }
    const float scale = grid_scale(l, h);
    lo[i] = l;
    c[i] = scale > 0 ? scale : 1.0f;
  }
  int8_rows_product(w, x, m, lo.data(), c.data(), scales.data(), row_sums.data_ptr<float>(),
                    y.data_ptr<float>());
  for (int64_t i : non_finite) y[i].fill_(std::numeric_limits<float>::quiet_NaN());
  return y;
}

// oneDNN through libtorch, each row over its own range as the kernel (int8_linear.h): the rows
// mapped onto [0, L] (L = onednn_int8_levels(); nn/int8_row_map.h), so that the engine quantises
// with scale 1 and zero point 0 (every non-constant row's maximum maps to L, its minimum to 0;
// libtorch's reduce_range for L = 127; with no such row every input is 0, which any scale keeps),
// and the result mapped back per row. A constant row is exact; a row
// holding NaN or an infinity gives NaN throughout.
torch::Tensor onednn_rows_product(LinearPackedParamsBase& params, const torch::Tensor& row_sums,
                                  const torch::Tensor& rows) {
  const int levels = onednn_int8_levels();
  const int64_t m = rows.size(0), in = rows.size(1);
  torch::Tensor shifted = torch::empty_like(rows);
  std::vector<float> lo(static_cast<size_t>(m)), c(lo.size());
  std::vector<uint8_t> finite(lo.size());
  int8_map_rows(rows.data_ptr<float>(), m, in, levels, shifted.data_ptr<float>(), lo.data(),
                c.data(), finite.data());
  torch::Tensor y = params.apply_dynamic(shifted, /*reduce_range=*/levels < 255).contiguous();
  int8_unmap_rows(y.data_ptr<float>(), m, y.size(1), lo.data(), c.data(), finite.data(),
                  row_sums.data_ptr<float>());
  return y;
}

}  // namespace

torch::Tensor Int8Weight::forward(const torch::Tensor& x) const {
  check(!(torch::GradMode::is_enabled() && x.requires_grad()),
        "int8 linear layers are for inference: no gradients flow through them (train in fp32 or "
        "autocast-bf16)");
  check(x.device().is_cpu() && x.scalar_type() == torch::kFloat32,
        "int8 linear layers take fp32 CPU inputs, got ", x.scalar_type(), " on ", x.device());
  check(x.dim() >= 1 && x.size(-1) == in_, "int8 linear layer: inputs of width ", in_,
        " expected, got ", x.sizes());
  // Named in profiles (bench --profile): the library's kernel calls no operator of its own.
  RECORD_FUNCTION("compacter::int8_linear", c10::ArrayRef<const c10::IValue>{});
  std::vector<int64_t> sizes(x.sizes().begin(), x.sizes().end());
  const torch::Tensor rows = x.reshape({-1, in_}).contiguous();
  torch::Tensor y;
  const int64_t m = rows.size(0);
  if (packed_->rows) {
    y = rows_product(*packed_->rows, packed_->scales, row_sums_, rows);
  } else if (m > 0) {
    y = onednn_rows_product(*packed_->params, row_sums_, rows);
  } else {
    y = torch::empty({0, out_});
  }
  sizes.back() = y.size(-1);
  return y.view(sizes);
}

bool Int8Keep::keeps(const std::string& path) const {
  const std::string suffix = ".wo";
  return wo && path.size() >= suffix.size() &&
         path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Int8Keep parse_int8_keep(const std::string& list) {
  Int8Keep keep;
  keep.wo = false;
  if (list == "none") return keep;
  size_t start = 0;
  while (true) {
    const size_t comma = list.find(',', start);
    const std::string name = list.substr(start, comma == std::string::npos ? comma : comma - start);
    if (name == "wo") {
      keep.wo = true;
    } else if (name == "lm_head") {
      keep.lm_head = true;
    } else {
      throw UsageError(cat("--int8-keep-fp32: unknown layer \"", name, "\" in \"", list,
                           "\" (expected a comma list of wo and lm_head, or none)"));
    }
    if (comma == std::string::npos) return keep;
    start = comma + 1;
  }
}

Int8Keep int8_keep_for(const std::string& list, bool int8, const std::string& dtype_option,
                       const std::string& dtype) {
  const Int8Keep keep = parse_int8_keep(list);
  check_usage(int8 || list == kInt8KeepFp32Default, "--int8-keep-fp32 ", list, " applies to ",
              dtype_option, " int8 only (got ", dtype_option, " ", dtype, ")");
  return keep;
}

std::string int8_keep_list(const Int8Keep& keep) {
  if (keep.wo && keep.lm_head) return "wo,lm_head";
  if (keep.wo) return "wo";
  return keep.lm_head ? "lm_head" : "none";
}

std::string int8_engine_description() {
  if (int8_rows_available()) return "AVX-512 VNNI kernel, a range per row";
  if (!onednn_int8_available()) return "";
  return onednn_int8_saturates()
             ? "oneDNN, a range per row, 7-bit inputs (no VNNI: int16 pair sums saturate)"
             : "oneDNN, a range per row";
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

// Whether an adapter's tensor is the base's own: the same tensor, or a view of the same values.
bool same_tensor(const torch::Tensor& a, const torch::Tensor& b) {
  return a.is_same(b) || (a.data_ptr() == b.data_ptr() && a.sizes() == b.sizes() &&
                          a.strides() == b.strides() && a.scalar_type() == b.scalar_type());
}

// Quantises `linear` (at `path`) into its own int8 copy, then frees its fp32 weight under kFree;
// its weight must be fp32 on the CPU.
void quantize_own(const std::string& path, LinearImpl& linear, Fp32Weights fp32) {
  check(linear.weight.device().is_cpu() && linear.weight.scalar_type() == torch::kFloat32,
        "int8: ", path, " is ", linear.weight.scalar_type(), " on ", linear.weight.device(),
        " (int8 quantises an fp32 model on the CPU)");
  linear.set_int8(std::make_shared<Int8Weight>(linear.weight));
  if (fp32 == Fp32Weights::kFree) linear.free_fp32_weight();
}

// The same for the output layer's matrix (its own, or the shared embedding when tied, which stays:
// the input lookup reads it).
void quantize_own_head(LMHeadImpl& head, Fp32Weights fp32) {
  const torch::Tensor& m = head.matrix();
  check(m.device().is_cpu() && m.scalar_type() == torch::kFloat32, "int8: lm_head is ",
        m.scalar_type(), " on ", m.device(), " (int8 quantises an fp32 model on the CPU)");
  head.set_int8(std::make_shared<Int8Weight>(m));
  if (fp32 == Fp32Weights::kFree && head.owns_matrix()) head.free_fp32_weight();
}

}  // namespace

int64_t quantize_linears_int8(T5ModelImpl& model, Fp32Weights fp32, const Int8Keep& keep) {
  refuse_recomputed_weights(model, "this model", "");
  int64_t count = 0;
  model.for_each_linear([&](const std::string& path, LinearImpl& linear) {
    if (keep.keeps(path)) return;
    quantize_own(path, linear, fp32);
    ++count;
  });
  if (!keep.lm_head) {
    quantize_own_head(*model.lm_head, fp32);
    ++count;
  }
  return count;
}

int64_t share_int8(T5ModelImpl& base, T5ModelImpl& model, Fp32Weights fp32) {
  std::map<std::string, LinearImpl*> quantised;
  base.for_each_linear([&](const std::string& path, LinearImpl& linear) {
    if (linear.is_int8()) quantised.emplace(path, &linear);
  });
  if (quantised.empty() && !base.lm_head->int8()) return 0;
  refuse_recomputed_weights(model, "this adapter's method", " (serve it with --dtype fp32)");
  int64_t own = 0;
  model.for_each_linear([&](const std::string& path, LinearImpl& linear) {
    const auto it = quantised.find(path);
    if (it == quantised.end()) return;
    if (same_tensor(linear.weight, it->second->weight)) {
      linear.set_int8(it->second->int8());
    } else {
      quantize_own(path, linear, fp32);
      ++own;
    }
  });
  if (base.lm_head->int8()) {
    if (same_tensor(model.lm_head->matrix(), base.lm_head->matrix())) {
      model.lm_head->set_int8(base.lm_head->int8());
    } else {
      quantize_own_head(*model.lm_head, fp32);
      ++own;
    }
  }
  return own;
}

std::map<std::string, std::vector<int64_t>> freed_weight_shapes(T5ModelImpl& model) {
  std::map<std::string, std::vector<int64_t>> out;
  model.for_each_linear([&](const std::string& path, LinearImpl& linear) {
    if (linear.weight.dim() != 2)
      out.emplace(path + ".weight",
                  std::vector<int64_t>{linear.out_features(), linear.in_features()});
  });
  if (model.lm_head->weight.defined() && model.lm_head->weight.dim() != 2)
    out.emplace("lm_head.weight", model.lm_head->shape());
  return out;
}

}  // namespace compacter::nn

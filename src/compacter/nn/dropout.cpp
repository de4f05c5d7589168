// Parallel hash-based dropout masks on the CPU (see dropout.h).
#include "compacter/nn/dropout.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <cstring>
#include <type_traits>

#include "compacter/core/error.h"
#include "compacter/nn/bf16_round.h"
#include "compacter/nn/cpu_clones.h"
#include "compacter/nn/dropout_hash.h"

namespace compacter::nn {

namespace {

using dropout_hash::draw_seed;
using dropout_hash::kGolden;
using dropout_hash::splitmix64;

// The documented keep rule (dropout.h, nn/dropout_hash.h) for element i.
inline bool dropout_keeps(uint64_t seed, int64_t i, uint64_t threshold) {
  return dropout_hash::keeps(seed + static_cast<uint64_t>(i) * kGolden, threshold);
}

}  // namespace

torch::Tensor dropout_mask(torch::IntArrayRef sizes, double p, uint64_t seed,
                           torch::ScalarType dtype) {
  check(p >= 0.0 && p < 1.0, "dropout probability must be in [0, 1), got ", p);
  torch::Tensor mask = torch::empty(sizes, torch::TensorOptions().dtype(dtype));
  const uint64_t threshold = dropout_hash::threshold(p);
  const double keep_scale = 1.0 / (1.0 - p);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, dtype, "dropout_mask", [&] {
    scalar_t* out = mask.data_ptr<scalar_t>();
    const auto scale = static_cast<scalar_t>(keep_scale);
    const auto zero = static_cast<scalar_t>(0);
    at::parallel_for(0, mask.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        out[i] = dropout_keeps(seed, i, threshold) ? scale : zero;
    });
  });
  return mask;
}

namespace {

// How mask_chunk reads an element and stores a product: as T itself (V = T; for bf16 and fp16,
// c10's arithmetic, a product in fp32 rounded back), or, for bf16 held as its raw bits
// (uint16_t), by bit operations the compiler vectorises: x widened exactly (bf16_value), the
// product rounded to nearest-even as c10::BFloat16's conversion rounds it (nn/bf16_round.h): the
// same bits as c10::BFloat16's product.
template <typename T>
struct Element {
  using V = T;
  static V load(T x) { return x; }
  static T store(V v) { return static_cast<T>(v); }
};
template <>
struct Element<uint16_t> {
  using V = float;
  static float load(uint16_t x) { return bf16_value(x); }
  static uint16_t store(float v) { return bf16_bits(v); }
};

// One chunk [begin, end) of apply_mask: out[i] = x[i] * scale where element i passes, else 0;
// with kRecord, pass[i] says which passed. The hash's argument seed + i * golden advances by
// golden per element (the same values, mod 2^64, without a multiply), and no branch depends on
// the data, so the compiler vectorises the loop (64-bit multiplies and compares: AVX-512DQ).
template <typename T, bool kRelu, bool kRecord>
inline __attribute__((always_inline)) void mask_chunk(const T* in, T* out, bool* pass,
                                                      int64_t begin, int64_t end, uint64_t seed,
                                                      uint64_t threshold,
                                                      typename Element<T>::V scale) {
  using V = typename Element<T>::V;
  uint64_t z = seed + static_cast<uint64_t>(begin) * kGolden;
  for (int64_t i = begin; i < end; ++i, z += kGolden) {
    const bool keep = (splitmix64(z) >> 40) >= threshold;
    const V x = Element<T>::load(in[i]);
    const bool passes = kRelu ? keep & !(x <= static_cast<V>(0)) : keep;
    out[i] = passes ? Element<T>::store(x * scale) : static_cast<T>(0);
    if constexpr (kRecord) pass[i] = passes;
  }
}

// mask_chunk's instantiation for `relu` and whether `pass` records (the four cases, said once).
template <typename T>
inline __attribute__((always_inline)) void mask_chunk_cases(const T* in, T* out, bool* pass,
                                                            int64_t begin, int64_t end,
                                                            uint64_t seed, uint64_t threshold,
                                                            typename Element<T>::V scale,
                                                            bool relu) {
  if (relu && pass)
    mask_chunk<T, true, true>(in, out, pass, begin, end, seed, threshold, scale);
  else if (relu)
    mask_chunk<T, true, false>(in, out, pass, begin, end, seed, threshold, scale);
  else if (pass)
    mask_chunk<T, false, true>(in, out, pass, begin, end, seed, threshold, scale);
  else
    mask_chunk<T, false, false>(in, out, pass, begin, end, seed, threshold, scale);
}

// fp32 (the training path) and bf16 (autocast's activations, as bits), compiled for AVX-512 and
// the baseline (nn/cpu_clones.h). The same results either way: the hash is integer arithmetic,
// the product one multiply per element and bf16's rounding integer arithmetic.
COMPACTER_CPU_CLONES
void mask_chunk_f32(const float* in, float* out, bool* pass, int64_t begin, int64_t end,
                    uint64_t seed, uint64_t threshold, float scale, bool relu) {
  mask_chunk_cases<float>(in, out, pass, begin, end, seed, threshold, scale, relu);
}
COMPACTER_CPU_CLONES
void mask_chunk_bf16(const uint16_t* in, uint16_t* out, bool* pass, int64_t begin, int64_t end,
                     uint64_t seed, uint64_t threshold, float scale, bool relu) {
  mask_chunk_cases<uint16_t>(in, out, pass, begin, end, seed, threshold, scale, relu);
}

template <typename T>
void mask_chunk_any(const T* in, T* out, bool* pass, int64_t begin, int64_t end, uint64_t seed,
                    uint64_t threshold, T scale, bool relu) {
  if constexpr (std::is_same_v<T, float>) {
    mask_chunk_f32(in, out, pass, begin, end, seed, threshold, scale, relu);
  } else if constexpr (std::is_same_v<T, c10::BFloat16>) {
    static_assert(sizeof(c10::BFloat16) == sizeof(uint16_t));
    mask_chunk_bf16(reinterpret_cast<const uint16_t*>(in), reinterpret_cast<uint16_t*>(out), pass,
                    begin, end, seed, threshold, static_cast<float>(scale), relu);
  } else {
    mask_chunk_cases<T>(in, out, pass, begin, end, seed, threshold, scale, relu);
  }
}

// One chunk [begin, end) of the backward: out[i] = (g[i] * passed[i]) * scale, passed[i] 0 or 1,
// the products of the unfused g.mul(passed).mul_(scale) in g's dtype (bf16 as bits, each product
// in fp32 rounded back; both exact but the last), so a NaN or a negative g keeps its NaN or -0.
// One pass where libtorch's operators made three (the bool mask promoted to g's dtype in a copy,
// then two products): ~75 ms of a t5-small Compacter++ fp32 step under the profiler. The mask is
// read as bytes: GCC does not vectorise loads of bool.
template <typename T>
inline __attribute__((always_inline)) void unmask_chunk(const T* g, const uint8_t* passed, T* out,
                                                        int64_t begin, int64_t end,
                                                        typename Element<T>::V scale) {
  using V = typename Element<T>::V;
  for (int64_t i = begin; i < end; ++i)
    out[i] = Element<T>::store((Element<T>::load(g[i]) * static_cast<V>(passed[i])) * scale);
}
COMPACTER_CPU_CLONES
void unmask_chunk_f32(const float* g, const uint8_t* passed, float* out, int64_t begin, int64_t end,
                      float scale) {
  unmask_chunk<float>(g, passed, out, begin, end, scale);
}
COMPACTER_CPU_CLONES
void unmask_chunk_bf16(const uint16_t* g, const uint8_t* passed, uint16_t* out, int64_t begin,
                       int64_t end, float scale) {
  unmask_chunk<uint16_t>(g, passed, out, begin, end, scale);
}

template <typename T>
void unmask_chunk_any(const T* g, const uint8_t* passed, T* out, int64_t begin, int64_t end,
                      T scale) {
  if constexpr (std::is_same_v<T, float>) {
    unmask_chunk_f32(g, passed, out, begin, end, scale);
  } else if constexpr (std::is_same_v<T, c10::BFloat16>) {
    unmask_chunk_bf16(reinterpret_cast<const uint16_t*>(g), passed,
                      reinterpret_cast<uint16_t*>(out), begin, end, static_cast<float>(scale));
  } else {
    unmask_chunk<T>(g, passed, out, begin, end, scale);
  }
}

// The dropout's backward (one chunk per task) into a new tensor: g * passed * (1 / (1 - p) in g's
// dtype).
torch::Tensor unmask(const torch::Tensor& g_in, const torch::Tensor& passed, double p) {
  RECORD_FUNCTION("compacter::dropout_backward", c10::ArrayRef<const c10::IValue>{});
  const torch::Tensor g = g_in.contiguous();
  torch::Tensor out = torch::empty_like(g, torch::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, g.scalar_type(), "dropout_grad", [&] {
    // 1 / (1 - p) rounded to g's dtype, as the scalar of libtorch's product was.
    const auto scale = static_cast<scalar_t>(1.0 / (1.0 - p));
    const scalar_t* gp = g.data_ptr<scalar_t>();
    static_assert(sizeof(bool) == 1);  // a bool tensor's bytes are 0 or 1
    const auto* k = reinterpret_cast<const uint8_t*>(passed.data_ptr<bool>());
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, g.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
      unmask_chunk_any<scalar_t>(gp, k, o, begin, end, scale);
    });
  });
  return out;
}

// One chunk [begin, end) of add_dropout: out[i] = h[i] + d[i], d[i] = the dropout of y[i] (y[i] *
// scale rounded to Y where element i is kept, else 0) in fp32, the sum rounded to H; pass[i] says
// which were kept. The unfused ops' roundings: dropout's product in y's dtype, then the add in the
// result's (float + float, or bf16's sum in fp32 rounded back).
template <typename Y, typename H>
inline __attribute__((always_inline)) void add_mask_chunk(const H* h, const Y* in, H* out,
                                                          bool* pass, int64_t begin, int64_t end,
                                                          uint64_t seed, uint64_t threshold,
                                                          float scale) {
  uint64_t z = seed + static_cast<uint64_t>(begin) * kGolden;
  for (int64_t i = begin; i < end; ++i, z += kGolden) {
    const bool keep = (splitmix64(z) >> 40) >= threshold;
    const float d =
        keep ? Element<Y>::load(Element<Y>::store(Element<Y>::load(in[i]) * scale)) : 0.0f;
    out[i] = Element<H>::store(Element<H>::load(h[i]) + d);
    pass[i] = keep;
  }
}
// The three cases add_dropout fuses (y, h): fp32 and fp32, bf16 and bf16, bf16 and fp32; bf16 as
// its bits.
COMPACTER_CPU_CLONES
void add_mask_chunk_f32(const float* h, const float* in, float* out, bool* pass, int64_t begin,
                        int64_t end, uint64_t seed, uint64_t threshold, float scale) {
  add_mask_chunk<float, float>(h, in, out, pass, begin, end, seed, threshold, scale);
}
COMPACTER_CPU_CLONES
void add_mask_chunk_bf16(const uint16_t* h, const uint16_t* in, uint16_t* out, bool* pass,
                         int64_t begin, int64_t end, uint64_t seed, uint64_t threshold,
                         float scale) {
  add_mask_chunk<uint16_t, uint16_t>(h, in, out, pass, begin, end, seed, threshold, scale);
}
COMPACTER_CPU_CLONES
void add_mask_chunk_bf16_f32(const float* h, const uint16_t* in, float* out, bool* pass,
                             int64_t begin, int64_t end, uint64_t seed, uint64_t threshold,
                             float scale) {
  add_mask_chunk<uint16_t, float>(h, in, out, pass, begin, end, seed, threshold, scale);
}

// x * dropout_mask(x.sizes(), p, seed, dtype) in one pass (with relu: relu(x) * that mask): the
// same products (x times the mask's value 1 / (1 - p) rounded to x's dtype), elements in x's
// logical order. With `pass_out`, also which elements pass (bool, 1 byte each): kept by the mask
// and, with relu, not cut by it (x > 0, or NaN, which relu propagates).
torch::Tensor apply_mask(const torch::Tensor& x_in, double p, uint64_t seed, bool relu,
                         torch::Tensor* pass_out) {
  // Named for libtorch's profiler (bench --profile), which sees no aten operator here.
  RECORD_FUNCTION(relu ? "compacter::relu_dropout" : "compacter::dropout",
                  c10::ArrayRef<const c10::IValue>{});
  const torch::Tensor x = x_in.contiguous();
  torch::Tensor out = torch::empty_like(x, torch::MemoryFormat::Contiguous);
  bool* k = nullptr;
  if (pass_out) {
    *pass_out = torch::empty(x.sizes(), x.options().dtype(torch::kBool));
    k = pass_out->data_ptr<bool>();
  }
  const uint64_t threshold = dropout_hash::threshold(p);
  const double keep_scale = 1.0 / (1.0 - p);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "dropout", [&] {
    const scalar_t* in = x.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const auto scale = static_cast<scalar_t>(keep_scale);
    at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
      mask_chunk_any<scalar_t>(in, o, k, begin, end, seed, threshold, scale, relu);
    });
  });
  return out;
}

// Forward: one pass that also records which elements passed (1 byte each, where the unfused
// ops kept a mask of x's dtype, and relu its output); backward: one pass of grad * passed *
// (1 / (1 - p) in grad's dtype), the same products as the unfused ops' backward.
class HashDropout : public torch::autograd::Function<HashDropout> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               double p, int64_t seed, bool relu) {
    torch::Tensor passed;
    torch::Tensor out =
        apply_mask(x, p, static_cast<uint64_t>(seed), relu, x.requires_grad() ? &passed : nullptr);
    ctx->saved_data["p"] = p;
    if (passed.defined()) ctx->save_for_backward({passed});
    return out;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    return {unmask(grads[0], ctx->get_saved_variables()[0], ctx->saved_data["p"].toDouble()),
            torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// h + dropout(y) where add_dropout fuses it (see dropout.h); `passed` records the kept elements.
torch::Tensor apply_add_mask(const torch::Tensor& h_in, const torch::Tensor& y_in, double p,
                             uint64_t seed, torch::Tensor* passed) {
  RECORD_FUNCTION("compacter::add_dropout", c10::ArrayRef<const c10::IValue>{});
  const torch::Tensor h = h_in.contiguous(), y = y_in.contiguous();
  torch::Tensor out = torch::empty_like(h, torch::MemoryFormat::Contiguous);
  *passed = torch::empty(y.sizes(), y.options().dtype(torch::kBool));
  bool* k = passed->data_ptr<bool>();
  const uint64_t threshold = dropout_hash::threshold(p);
  // 1 / (1 - p) in y's dtype, as dropout's scalar.
  const float scale = y.scalar_type() == torch::kBFloat16
                          ? static_cast<float>(static_cast<c10::BFloat16>(1.0 / (1.0 - p)))
                          : static_cast<float>(1.0 / (1.0 - p));
  const bool y16 = y.scalar_type() == torch::kBFloat16, h16 = h.scalar_type() == torch::kBFloat16;
  const auto* y_bits =
      y16 ? reinterpret_cast<const uint16_t*>(y.data_ptr<c10::BFloat16>()) : nullptr;
  // The pointers are taken once, outside the threads' chunks; each is null where the dtypes
  // say another loop runs.
  const float* h32 = h16 ? nullptr : h.data_ptr<float>();
  const float* y32 = y16 ? nullptr : y.data_ptr<float>();
  float* out32 = h16 ? nullptr : out.data_ptr<float>();
  const auto* h_bits =
      h16 ? reinterpret_cast<const uint16_t*>(h.data_ptr<c10::BFloat16>()) : nullptr;
  auto* out_bits = h16 ? reinterpret_cast<uint16_t*>(out.data_ptr<c10::BFloat16>()) : nullptr;
  at::parallel_for(0, y.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    if (!y16)
      add_mask_chunk_f32(h32, y32, out32, k, begin, end, seed, threshold, scale);
    else if (h16)
      add_mask_chunk_bf16(h_bits, y_bits, out_bits, k, begin, end, seed, threshold, scale);
    else
      add_mask_chunk_bf16_f32(h32, y_bits, out32, k, begin, end, seed, threshold, scale);
  });
  return out;
}

// Forward: apply_add_mask, keeping which elements were kept; backward: h's gradient is the
// output's, y's that gradient in y's dtype through unmask.
class HashAddDropout : public torch::autograd::Function<HashAddDropout> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& h,
                               const torch::Tensor& y, double p, int64_t seed) {
    torch::Tensor passed;
    torch::Tensor out = apply_add_mask(h, y, p, static_cast<uint64_t>(seed), &passed);
    ctx->saved_data["p"] = p;
    ctx->saved_data["y_type"] = y.scalar_type();
    ctx->saved_data["h_type"] = h.scalar_type();
    ctx->save_for_backward({passed});
    return out;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const torch::Tensor& g = grads[0];
    torch::Tensor gh, gy;
    if (ctx->needs_input_grad(0)) gh = g.to(ctx->saved_data["h_type"].toScalarType());
    if (ctx->needs_input_grad(1))
      gy = unmask(g.to(ctx->saved_data["y_type"].toScalarType()), ctx->get_saved_variables()[0],
                  ctx->saved_data["p"].toDouble());
    return {gh, gy, torch::Tensor(), torch::Tensor()};
  }
};

// Whether add_dropout fuses h + dropout(y) (the cases of add_mask_chunk; same sizes, the result
// h's dtype).
bool add_dropout_fuses(const torch::Tensor& h, const torch::Tensor& y) {
  if (!h.device().is_cpu() || !y.device().is_cpu() || h.sizes() != y.sizes()) return false;
  if (h.layout() != torch::kStrided || y.layout() != torch::kStrided) return false;
  const auto ht = h.scalar_type(), yt = y.scalar_type();
  return (ht == torch::kFloat32 && (yt == torch::kFloat32 || yt == torch::kBFloat16)) ||
         (ht == torch::kBFloat16 && yt == torch::kBFloat16);
}

}  // namespace

torch::Tensor dropout(const torch::Tensor& x, double p, bool training) {
  if (!training || p == 0.0) return x;
  if (!x.device().is_cpu()) return torch::dropout(x, p, training);
  check(p > 0.0 && p < 1.0, "dropout probability must be in [0, 1), got ", p);
  return HashDropout::apply(x, p, static_cast<int64_t>(draw_seed()), false);
}

torch::Tensor relu_dropout(const torch::Tensor& x, double p, bool training) {
  // Fused only where dropout() would run the hash pass on the CPU, and not in fp16 (no vectorised
  // loop: c10::Half's arithmetic); elsewhere the two passes.
  if (!training || p == 0.0 || !x.device().is_cpu() || x.scalar_type() == torch::kHalf)
    return nn::dropout(torch::relu(x), p, training);
  check(p > 0.0 && p < 1.0, "dropout probability must be in [0, 1), got ", p);
  return HashDropout::apply(x, p, static_cast<int64_t>(draw_seed()), true);
}

torch::Tensor add_dropout(const torch::Tensor& h, const torch::Tensor& y, double p, bool training) {
  if (!training || p == 0.0 || !add_dropout_fuses(h, y)) return h + nn::dropout(y, p, training);
  check(p > 0.0 && p < 1.0, "dropout probability must be in [0, 1), got ", p);
  return HashAddDropout::apply(h, y, p, static_cast<int64_t>(draw_seed()));
}

}  // namespace compacter::nn

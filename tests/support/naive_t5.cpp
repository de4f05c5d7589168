// See naive_t5.h. Written from the definition of Hugging Face transformers' modeling_t5.py
// (T5ForConditionalGeneration, eval mode), one sequence at a time, in double precision; for
// model_type "umt5" from modeling_umt5.py (UMT5ForConditionalGeneration): every UMT5Attention
// of a self-attention layer is built with has_relative_attention_bias=True and computes its own
// bias (UMT5Attention.compute_bias, the same bucket function: bidirectional when not is_decoder),
// where T5 computes it in block 0 and passes it on; cross-attention has none in both.
#include "support/naive_t5.h"

#include <algorithm>
#include <random>
#include <stdexcept>
#include <utility>

namespace compacter::testing {

namespace {

using Vec = std::vector<double>;
using Shape = std::vector<int64_t>;

// HF adds torch.finfo(dtype).min to masked scores; any huge negative number gives exp() == 0.
constexpr double kMasked = -1e30;
const double kPi = std::acos(-1.0);

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Weights converted to double once, checked against the shape HF gives them.
class Weights {
 public:
  explicit Weights(const std::map<std::string, torch::Tensor>& src) : src_(src) {}
  const Vec& get(const std::string& name, const Shape& shape) {
    auto hit = cache_.find(name);
    if (hit != cache_.end()) return hit->second;
    auto it = src_.find(name);
    if (it == src_.end()) throw std::runtime_error("naive_t5: missing weight " + name);
    const Shape actual(it->second.sizes().begin(), it->second.sizes().end());
    if (actual != shape)
      throw std::runtime_error("naive_t5: weight " + name + " has shape " + shape_str(actual) +
                               ", expected " + shape_str(shape));
    torch::Tensor t = it->second.to(torch::kDouble).contiguous();
    const double* p = t.data_ptr<double>();
    return cache_.emplace(name, Vec(p, p + t.numel())).first->second;
  }

 private:
  const std::map<std::string, torch::Tensor>& src_;
  std::map<std::string, Vec> cache_;
};

// nn.Linear without bias: y[n, o] = sum_k x[n, k] * w[o, k]  (w is [out, in], y = x W^T).
Vec linear(const Vec& x, int64_t rows, int64_t in, const Vec& w, int64_t out) {
  Vec y(rows * out, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = 0;
      for (int64_t k = 0; k < in; ++k) s += x[r * in + k] * w[o * in + k];
      y[r * out + o] = s;
    }
  return y;
}

double activate(double x, const std::string& act) {
  if (act == "relu") return x > 0 ? x : 0.0;
  if (act == "gelu") return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));  // exact (erf)
  if (act == "gelu_new")  // HF NewGELUActivation (tanh approximation)
    return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / kPi) * (x + 0.044715 * x * x * x)));
  if (act == "silu") return x / (1.0 + std::exp(-x));
  throw std::runtime_error("naive_t5: unknown activation " + act);
}

struct Model {
  const T5Config& cfg;
  Weights w;
  int64_t d, h, dkv, inner;

  Model(const T5Config& c, const std::map<std::string, torch::Tensor>& src)
      : cfg(c), w(src), d(c.d_model), h(c.num_heads), dkv(c.d_kv), inner(c.inner_dim()) {}

  // T5LayerNorm: x * rsqrt(mean(x^2) + eps) * weight; no mean subtraction, no bias.
  Vec rms_norm(const Vec& x, int64_t rows, const std::string& name) {
    const Vec& g = w.get(name, {d});
    Vec y(x.size());
    for (int64_t r = 0; r < rows; ++r) {
      double ms = 0;
      for (int64_t k = 0; k < d; ++k) ms += x[r * d + k] * x[r * d + k];
      const double scale = 1.0 / std::sqrt(ms / d + cfg.layer_norm_epsilon);
      for (int64_t k = 0; k < d; ++k) y[r * d + k] = x[r * d + k] * scale * g[k];
    }
    return y;
  }

  Vec embed(const std::vector<int64_t>& ids) {
    const Vec& e = w.get("shared.weight", {cfg.vocab_size, d});
    Vec x(ids.size() * d);
    for (size_t t = 0; t < ids.size(); ++t) {
      if (ids[t] < 0 || ids[t] >= cfg.vocab_size)
        throw std::runtime_error("naive_t5: token id out of range: " + std::to_string(ids[t]));
      std::copy_n(e.begin() + ids[t] * d, d, x.begin() + t * d);
    }
    return x;
  }

  // UMT5 (modeling_umt5): each block's self-attention owns a relative_attention_bias.
  bool umt5() const { return cfg.model_type == "umt5"; }

  // T5Attention.compute_bias: bias[h][i][j] = emb[bucket(j - i)][h] with the
  // relative_attention_bias of block `block` (T5: always 0; encoder: bidirectional; decoder
  // self-attention: causal).
  Vec position_bias(const std::string& stack, int64_t block, int64_t lq, int64_t lk,
                    bool bidirectional) {
    const int64_t nb = cfg.relative_attention_num_buckets;
    const Vec& emb = w.get(stack + ".block." + std::to_string(block) +
                               ".layer.0.SelfAttention.relative_attention_bias.weight",
                           {nb, h});
    Vec bias(h * lq * lk);
    for (int64_t i = 0; i < lq; ++i)
      for (int64_t j = 0; j < lk; ++j) {
        const int64_t b = naive_relative_position_bucket(j - i, bidirectional, nb,
                                                         cfg.relative_attention_max_distance);
        for (int64_t hh = 0; hh < h; ++hh) bias[(hh * lq + i) * lk + j] = emb[b * h + hh];
      }
    return bias;
  }

  // T5Attention without 1/sqrt(d_kv) scaling: softmax_j(q_i . k_j + bias + mask) v_j per head,
  // heads concatenated, then o. visible(i, j) == false adds the huge negative mask.
  template <typename Visible>
  Vec attention(const std::string& p, const Vec& xq, int64_t lq, const Vec& xkv, int64_t lk,
                const Vec* bias, Visible visible) {
    const Vec q = linear(xq, lq, d, w.get(p + "q.weight", {inner, d}), inner);
    const Vec k = linear(xkv, lk, d, w.get(p + "k.weight", {inner, d}), inner);
    const Vec v = linear(xkv, lk, d, w.get(p + "v.weight", {inner, d}), inner);
    Vec ctx(lq * inner, 0.0), s(lk);
    for (int64_t hh = 0; hh < h; ++hh)
      for (int64_t i = 0; i < lq; ++i) {
        for (int64_t j = 0; j < lk; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < dkv; ++c)
            dot += q[i * inner + hh * dkv + c] * k[j * inner + hh * dkv + c];
          s[j] = dot + (bias ? (*bias)[(hh * lq + i) * lk + j] : 0.0) +
                 (visible(i, j) ? 0.0 : kMasked);
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double z = 0;
        for (double& e : s) z += (e = std::exp(e - mx));
        for (int64_t j = 0; j < lk; ++j)
          for (int64_t c = 0; c < dkv; ++c)
            ctx[i * inner + hh * dkv + c] += s[j] / z * v[j * inner + hh * dkv + c];
      }
    return linear(ctx, lq, inner, w.get(p + "o.weight", {d, inner}), d);
  }

  // T5DenseActDense: wo(act(wi x)); T5DenseGatedActDense: wo(act(wi_0 x) * (wi_1 x)).
  Vec feed_forward(const std::string& p, const Vec& x, int64_t rows) {
    const int64_t f = cfg.d_ff;
    const std::string act = cfg.activation();
    Vec a;
    if (cfg.is_gated()) {
      a = linear(x, rows, d, w.get(p + "wi_0.weight", {f, d}), f);
      const Vec lin = linear(x, rows, d, w.get(p + "wi_1.weight", {f, d}), f);
      for (size_t k = 0; k < a.size(); ++k) a[k] = activate(a[k], act) * lin[k];
    } else {
      a = linear(x, rows, d, w.get(p + "wi.weight", {f, d}), f);
      for (double& e : a) e = activate(e, act);
    }
    return linear(a, rows, f, w.get(p + "wo.weight", {d, f}), d);
  }

  static void add(Vec& x, const Vec& y) {
    for (size_t k = 0; k < x.size(); ++k) x[k] += y[k];
  }

  // T5Stack (encoder): pre-norm residual blocks, then final_layer_norm.
  Vec encode(const std::vector<int64_t>& ids, const std::vector<int64_t>& mask) {
    const int64_t n = static_cast<int64_t>(ids.size());
    Vec x = embed(ids);
    Vec bias = position_bias("encoder", 0, n, n, /*bidirectional=*/true);
    auto visible = [&](int64_t, int64_t j) { return mask[j] != 0; };
    for (int64_t b = 0; b < cfg.num_layers; ++b) {
      if (umt5() && b > 0) bias = position_bias("encoder", b, n, n, true);
      const std::string p = "encoder.block." + std::to_string(b) + ".layer.";
      const Vec normed = rms_norm(x, n, p + "0.layer_norm.weight");
      add(x, attention(p + "0.SelfAttention.", normed, n, normed, n, &bias, visible));
      add(x, feed_forward(p + "1.DenseReluDense.", rms_norm(x, n, p + "1.layer_norm.weight"), n));
    }
    return rms_norm(x, n, "encoder.final_layer_norm.weight");
  }

  // T5Stack (decoder): causal self-attention with its own position bias, cross-attention on the
  // encoder output (encoder padding mask, no position bias), feed-forward, final_layer_norm.
  Vec decode(const std::vector<int64_t>& ids, const Vec& enc, const std::vector<int64_t>& mask) {
    const int64_t t = static_cast<int64_t>(ids.size());
    const int64_t s = static_cast<int64_t>(mask.size());
    Vec x = embed(ids);
    Vec bias = position_bias("decoder", 0, t, t, /*bidirectional=*/false);
    auto causal = [](int64_t i, int64_t j) { return j <= i; };
    auto padding = [&](int64_t, int64_t j) { return mask[j] != 0; };
    for (int64_t b = 0; b < cfg.decoder_layers(); ++b) {
      if (umt5() && b > 0) bias = position_bias("decoder", b, t, t, false);
      const std::string p = "decoder.block." + std::to_string(b) + ".layer.";
      Vec n = rms_norm(x, t, p + "0.layer_norm.weight");
      add(x, attention(p + "0.SelfAttention.", n, t, n, t, &bias, causal));
      n = rms_norm(x, t, p + "1.layer_norm.weight");
      add(x, attention(p + "1.EncDecAttention.", n, t, enc, s, nullptr, padding));
      add(x, feed_forward(p + "2.DenseReluDense.", rms_norm(x, t, p + "2.layer_norm.weight"), t));
    }
    return rms_norm(x, t, "decoder.final_layer_norm.weight");
  }

  // lm_head; with tied embeddings HF first rescales by d_model^-0.5 and uses shared.weight.
  Vec lm_head(Vec x, int64_t rows) {
    const Shape shape = {cfg.vocab_size, d};
    if (!cfg.tie_word_embeddings)
      return linear(x, rows, d, w.get("lm_head.weight", shape), shape[0]);
    for (double& e : x) e *= 1.0 / std::sqrt(static_cast<double>(d));
    return linear(x, rows, d, w.get("shared.weight", shape), shape[0]);
  }
};

std::vector<int64_t> ints(const torch::Tensor& t) {
  torch::Tensor c = t.to(torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

}  // namespace

// HF _relative_position_bucket, for rel = key_pos - query_pos:
//   bidirectional: num_buckets //= 2; ret = (rel > 0) * num_buckets; n = |rel|
//   causal:        ret = 0;                                n = max(-rel, 0)
//   max_exact = num_buckets // 2; small n (< max_exact) is its own bucket, otherwise
//   max_exact + long(log(n.float() / max_exact) / math.log(max_distance / max_exact)
//                    * (num_buckets - max_exact)), capped at num_buckets - 1.
// The log term is evaluated in float32, step by step as torch does (float32 division by
// max_exact, float32 log, division by the Python double cast to float32, product, truncation).
// Measured (tests/nn/naive_t5_test.cpp, NaiveT5Bucket.MatchesTorchFloat32, libtorch 1.13 CPU):
// this equals libtorch's own float32 evaluation for every rel in [-1000, 1000], num_buckets
// 2..128, max_distance 2..64, 100, 128, 256, 1000, both directions (22.1M cases). A double
// evaluation does NOT always: where the exact value is an integer it can land just below it
// (causal, num_buckets 9, max_distance 128, n 16: 1.9999999999999998 -> 1, float32 2.0 -> 2) or
// float32 can (causal, num_buckets 17, max_distance 27, n 12: float32 2.99999976 -> 2, double 3.0
// -> 3): 70 of the 22.1M cases differ, all at such exact-integer points, none for the standard 32 /
// 128 settings.
int64_t naive_relative_position_bucket(int64_t rel, bool bidirectional, int64_t num_buckets,
                                       int64_t max_distance) {
  int64_t ret = 0, n = 0;
  if (bidirectional) {
    num_buckets /= 2;
    ret = rel > 0 ? num_buckets : 0;
    n = rel < 0 ? -rel : rel;
  } else {
    n = rel < 0 ? -rel : 0;
  }
  const int64_t max_exact = num_buckets / 2;
  if (n < max_exact) return ret + n;
  const float scaled = static_cast<float>(n) / static_cast<float>(max_exact);
  const float denom = static_cast<float>(std::log(static_cast<double>(max_distance) / max_exact));
  const float large = std::log(scaled) / denom * static_cast<float>(num_buckets - max_exact);
  return ret + std::min(max_exact + static_cast<int64_t>(large), num_buckets - 1);
}

torch::Tensor naive_shift_right(const torch::Tensor& labels, int64_t start_id, int64_t pad_id) {
  torch::Tensor in = labels.to(torch::kLong).contiguous();
  const int64_t cols = in.size(-1), rows = in.numel() / std::max<int64_t>(cols, 1);
  torch::Tensor out = torch::empty_like(in);
  const int64_t* src = in.data_ptr<int64_t>();
  int64_t* dst = out.data_ptr<int64_t>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t v = c == 0 ? start_id : src[r * cols + c - 1];
      dst[r * cols + c] = v == -100 ? pad_id : v;
    }
  return out;
}

NaiveT5Output naive_t5_forward(const T5Config& cfg,
                               const std::map<std::string, torch::Tensor>& weights,
                               const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                               const torch::Tensor& decoder_input_ids,
                               const torch::Tensor& labels) {
  if (input_ids.dim() != 2 || decoder_input_ids.dim() != 2 ||
      input_ids.size(0) != decoder_input_ids.size(0))
    throw std::runtime_error("naive_t5: expected input_ids [B, S] and decoder_input_ids [B, T]");
  const int64_t batch = input_ids.size(0), s = input_ids.size(1), t = decoder_input_ids.size(1);
  const int64_t d = cfg.d_model, vocab = cfg.vocab_size;
  const std::vector<int64_t> ids = ints(input_ids), dec_ids = ints(decoder_input_ids);
  const std::vector<int64_t> mask =
      attention_mask.defined() ? ints(attention_mask) : std::vector<int64_t>(batch * s, 1);
  const std::vector<int64_t> lab = labels.defined() ? ints(labels) : std::vector<int64_t>();
  if (static_cast<int64_t>(mask.size()) != batch * s ||
      (labels.defined() && static_cast<int64_t>(lab.size()) != batch * t))
    throw std::runtime_error("naive_t5: attention_mask / labels do not match the id shapes");

  Model m(cfg, weights);
  NaiveT5Output out;
  out.encoder_shape = {batch, s, d};
  out.logits_shape = {batch, t, vocab};
  double loss_sum = 0;
  int64_t loss_count = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const std::vector<int64_t> row_ids(ids.begin() + b * s, ids.begin() + (b + 1) * s);
    const std::vector<int64_t> row_mask(mask.begin() + b * s, mask.begin() + (b + 1) * s);
    const std::vector<int64_t> row_dec(dec_ids.begin() + b * t, dec_ids.begin() + (b + 1) * t);
    const Vec enc = m.encode(row_ids, row_mask);
    const Vec logits = m.lm_head(m.decode(row_dec, enc, row_mask), t);
    out.encoder_last_hidden_state.insert(out.encoder_last_hidden_state.end(), enc.begin(),
                                         enc.end());
    out.logits.insert(out.logits.end(), logits.begin(), logits.end());
    // CrossEntropyLoss(ignore_index=-100): mean of logsumexp(logits) - logits[label].
    for (int64_t i = 0; i < t && labels.defined(); ++i) {
      const int64_t y = lab[b * t + i];
      if (y == -100) continue;
      if (y < 0 || y >= vocab) throw std::runtime_error("naive_t5: label out of range");
      const double* row = logits.data() + i * vocab;
      const double mx = *std::max_element(row, row + vocab);
      double z = 0;
      for (int64_t k = 0; k < vocab; ++k) z += std::exp(row[k] - mx);
      loss_sum += mx + std::log(z) - row[y];
      ++loss_count;
    }
  }
  if (labels.defined()) out.loss = loss_sum / static_cast<double>(loss_count);  // 0/0 = NaN, as HF
  return out;
}

std::map<std::string, torch::Tensor> naive_random_t5_weights(const T5Config& cfg, uint64_t seed) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  std::mt19937 gen(seq);
  // Box-Muller on two 53-bit uniforms in (0, 1), so the numbers do not depend on the standard
  // library's normal_distribution.
  auto uniform = [&gen] {
    const double hi = static_cast<double>(gen() >> 5), lo = static_cast<double>(gen() >> 6);
    return (hi * 67108864.0 + lo + 0.5) / 9007199254740992.0;
  };
  auto normal = [&] {
    return std::sqrt(-2.0 * std::log(uniform())) * std::cos(2 * kPi * uniform());
  };

  std::map<std::string, torch::Tensor> out;
  // mean + std * N(0, 1); the std values follow HF's T5PreTrainedModel._init_weights (factor 1),
  // except that lm_head uses d_model^-0.5 (logits O(1)), the relative bias 0.5 (so the bucket
  // layout matters) and layer norms 1 + 0.1 N (so the norm weight matters).
  auto add = [&](const std::string& name, Shape shape, double std, double mean = 0.0) {
    torch::Tensor t = torch::empty(shape, torch::kFloat);
    float* p = t.data_ptr<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(mean + std * normal());
    out[name] = t;
  };
  const int64_t d = cfg.d_model, inner = cfg.inner_dim(), f = cfg.d_ff;
  const double rd = 1.0 / std::sqrt(static_cast<double>(d));
  add("shared.weight", {cfg.vocab_size, d}, 1.0);
  auto attention = [&](const std::string& p, bool with_bias) {
    add(p + "q.weight", {inner, d}, 1.0 / std::sqrt(static_cast<double>(d * cfg.d_kv)));
    add(p + "k.weight", {inner, d}, rd);
    add(p + "v.weight", {inner, d}, rd);
    add(p + "o.weight", {d, inner}, 1.0 / std::sqrt(static_cast<double>(inner)));
    if (with_bias)
      add(p + "relative_attention_bias.weight", {cfg.relative_attention_num_buckets, cfg.num_heads},
          0.5);
  };
  auto feed_forward = [&](const std::string& p) {
    for (const char* wi :
         cfg.is_gated() ? std::vector<const char*>{"wi_0", "wi_1"} : std::vector<const char*>{"wi"})
      add(p + wi + ".weight", {f, d}, rd);
    add(p + "wo.weight", {d, f}, 1.0 / std::sqrt(static_cast<double>(f)));
  };
  for (const bool dec : {false, true}) {
    const std::string stack = dec ? "decoder" : "encoder";
    for (int64_t b = 0; b < (dec ? cfg.decoder_layers() : cfg.num_layers); ++b) {
      const std::string p = stack + ".block." + std::to_string(b) + ".layer.";
      attention(p + "0.SelfAttention.", b == 0 || cfg.model_type == "umt5");
      add(p + "0.layer_norm.weight", {d}, 0.1, 1.0);
      if (dec) {
        attention(p + "1.EncDecAttention.", false);
        add(p + "1.layer_norm.weight", {d}, 0.1, 1.0);
      }
      const std::string ff = p + (dec ? "2." : "1.");
      feed_forward(ff + "DenseReluDense.");
      add(ff + "layer_norm.weight", {d}, 0.1, 1.0);
    }
    add(stack + ".final_layer_norm.weight", {d}, 0.1, 1.0);
  }
  if (!cfg.tie_word_embeddings) add("lm_head.weight", {cfg.vocab_size, d}, rd);
  return out;
}

}  // namespace compacter::testing

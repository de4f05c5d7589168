// nn::Int8Weight and quantize_linears_int8 against the dynamic-quantisation error bound computed
// in double precision from the documented scheme (int8_linear.h): per-row weight scales
// s_w = max |w_row| / 127, inputs quantised to uint8 with a step of at most
// s_x = (max(x, 0) - min(x, 0)) / L, L = 255, or 127 for oneDNN where its int16 pair sums saturate
// (no VNNI: 7-bit inputs) or 7 bits are forced; both engines quantise each row over its own range,
// with a step of at most s_x. Each engine this machine runs is tested, and oneDNN with 7-bit inputs
// forced. Each product then errs by at most
//   sum_k |x_k| s_w / 2 + |w_k| s_x / 2 + s_x s_w / 4
// against the exact fp64 product. Also: the weights' rows round to the nearest step, a T5's
// logits stay close to fp32, gradients are refused, freeing the fp32 weights frees their
// bytes and changes no output, the output layer is quantised as any layer, and
// --int8-keep-fp32 keeps the layers it names.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/nn/int8_linear.h"
#include "compacter/nn/int8_rows.h"
#include "compacter/nn/layers.h"
#include "compacter/nn/t5.h"

namespace compacter::nn {
namespace {

// The engines this machine runs (int8_linear.h): the library's kernel where the CPU has AVX-512
// VNNI, oneDNN where libtorch has it, and oneDNN with 7-bit inputs (the path of CPUs without VNNI,
// forced where this one has it); each test below runs on each.
struct Variant {
  Int8Engine engine;
  bool seven_bits;  // set_onednn_int8_seven_bits
};
std::vector<Variant> variants() {
  std::vector<Variant> out;
  if (int8_rows_available()) out.push_back({Int8Engine::kKernel, false});
  if (onednn_int8_available()) out.push_back({Int8Engine::kOneDnn, false});
  if (onednn_int8_available() && !onednn_int8_saturates())
    out.push_back({Int8Engine::kOneDnn, true});
  return out;
}

std::string name(const Variant& v) {
  return v.engine == Int8Engine::kKernel ? "kernel" : v.seven_bits ? "oneDNN, 7 bits" : "oneDNN";
}

// 7-bit inputs forced for a scope.
struct SevenBits {
  explicit SevenBits(bool on) { set_onednn_int8_seven_bits(on); }
  ~SevenBits() { set_onednn_int8_seven_bits(false); }
};

// The top of the engine's input grid (int8_linear.h): 255, or 127 where oneDNN's pair sums
// saturate or 7 bits are forced.
int levels(Int8Engine e) {
  return e == Int8Engine::kOneDnn ? onednn_int8_levels() : 255;
}

TEST(Int8Linear, WithinTheQuantisationBound) {
  if (!int8_available()) GTEST_SKIP() << "no int8 engine on this machine";
  for (const Variant& v : variants()) {
    SCOPED_TRACE(name(v));
    const SevenBits seven_bits(v.seven_bits);
    const Int8Engine engine = v.engine;
    torch::manual_seed(0);
    // Each row over its own range: a step of at most s_x.
    for (auto [rows, in, out] :
         {std::tuple<int64_t, int64_t, int64_t>{8, 512, 64}, {3, 64, 200}, {600, 64, 48}}) {
      SCOPED_TRACE(::testing::Message() << rows << "x" << in << "x" << out);
      torch::Tensor w = torch::randn({out, in}) * torch::rand({out, 1});  // rows of varied scale
      torch::Tensor x = torch::randn({rows, in}) + 0.3;
      Int8Weight q(w, engine);
      const torch::Tensor y = q.forward(x).to(torch::kDouble);
      const torch::Tensor wd = w.to(torch::kDouble), xd = x.to(torch::kDouble);
      const torch::Tensor exact = xd.matmul(wd.t());
      const torch::Tensor s_w = std::get<0>(wd.abs().max(1)) / 127.0;  // [out]
      const double s_x =
          (std::max(xd.max().item<double>(), 0.0) - std::min(xd.min().item<double>(), 0.0)) /
          levels(engine);
      const torch::Tensor bound = xd.abs().sum(1, true).matmul(s_w.unsqueeze(0)) / 2 +
                                  wd.abs().sum(1).unsqueeze(0) * (s_x / 2) +
                                  static_cast<double>(in) * s_x * s_w.unsqueeze(0) / 4;
      const torch::Tensor excess = (y - exact).abs() - (bound * 1.001 + 1e-5);
      EXPECT_LE(excess.max().item<double>(), 0.0);
      // And far from exact would be a broken kernel, not rounding: the error is well under the
      // output's own size.
      EXPECT_LT(((y - exact).abs().max() / exact.abs().max()).item<double>(), 0.05);
      // Weights: every element rounds to its row's nearest step.
      const torch::Tensor back = q.int8_values().to(torch::kDouble) * q.scales().unsqueeze(1);
      EXPECT_LE(((back - wd).abs() - q.scales().unsqueeze(1) / 2).max().item<double>(), 1e-6);
    }
  }
}

// x [rows, in] times q's weights in double, each row rounded to its documented grid (below).
torch::Tensor on_documented_grid(const torch::Tensor& x, const Int8Weight& q, int levels) {
  const int64_t rows = x.size(0), in = x.size(1);
  torch::Tensor grid = torch::empty({rows, in}, torch::kDouble);
  const torch::Tensor xc = x.contiguous();
  const float* px = xc.data_ptr<float>();
  double* pg = grid.data_ptr<double>();
  for (int64_t m = 0; m < rows; ++m) {
    const torch::Tensor range = xc[m];
    const float lo = range.min().item<float>(), hi = range.max().item<float>();
    const float top = static_cast<float>(levels);
    const float c = (top + 0.0001f) / (hi - lo);
    for (int64_t k = m * in; k < (m + 1) * in; ++k) {
      const float shifted = std::min(top, std::max(0.0f, (px[k] - lo) * c));
      pg[k] = static_cast<double>(lo) + std::nearbyint(shifted) / static_cast<double>(c);
    }
  }
  const torch::Tensor wq = q.int8_values().to(torch::kDouble) * q.scales().unsqueeze(1);
  return grid.matmul(wq.t());
}

// The largest error of a row of y against `want`'s, relative to that row's own size (rows'
// scales differ by up to 30x below).
double row_error(const torch::Tensor& y, const torch::Tensor& want) {
  return ((y - want).abs().amax(1) / want.abs().amax(1)).max().item<double>();
}

// The input is mapped onto [0, L] before the engine quantises it: the result is that of the
// input rounded to the grid lo + j / c (c = (L + 0.0001) / (max - min), j = 0..L; L = 255, or 127
// for oneDNN where its int16 pair sums saturate or 7 bits are forced), computed here in
// double from the documented mapping and the quantised weights. Every row has its own lo and c, at
// any number of rows, with either engine.
TEST(Int8Linear, RowsQuantiseOnTheirDocumentedGrid) {
  if (!int8_available()) GTEST_SKIP() << "no int8 engine on this machine";
  for (const Variant& v : variants()) {
    SCOPED_TRACE(name(v));
    const SevenBits seven_bits(v.seven_bits);
    const Int8Engine engine = v.engine;
    torch::manual_seed(4);
    // Widths that are not multiples of the kernel's tiles (int8_rows.h: 64 outputs, 4 inputs).
    for (auto [rows, in, out] : {std::tuple<int64_t, int64_t, int64_t>{1, 512, 96},
                                 {7, 64, 40},
                                 {300, 130, 70},
                                 {512, 67, 129},
                                 {612, 64, 65}}) {
      SCOPED_TRACE(::testing::Message() << rows << "x" << in << "x" << out);
      const torch::Tensor w = torch::randn({out, in}) * 0.1;
      // Rows of different scales and offsets.
      const torch::Tensor x =
          torch::randn({rows, in}) * (torch::rand({rows, 1}) * 3.0 + 0.1) + torch::randn({rows, 1});
      Int8Weight q(w, engine);
      const torch::Tensor y = q.forward(x).to(torch::kDouble);
      EXPECT_LT(row_error(y, on_documented_grid(x, q, levels(engine))), 1e-4);
    }
  }
}

// With either engine a row's result is its own: the same bits alone or in any batch; a constant
// row is exact for the quantised weights; a row holding NaN or an infinity gives NaN and leaves
// the other rows as they were.
TEST(Int8Linear, ARowsResultDoesNotDependOnItsBatch) {
  if (!int8_available()) GTEST_SKIP() << "no int8 engine on this machine";
  for (const Variant& v : variants()) {
    SCOPED_TRACE(name(v));
    const SevenBits seven_bits(v.seven_bits);
    const Int8Engine engine = v.engine;
    torch::manual_seed(9);
    const torch::Tensor w = torch::randn({70, 96});
    Int8Weight q(w, engine);
    torch::Tensor x = torch::randn({9, 96}) * torch::arange(1, 10).unsqueeze(1);
    x[3].fill_(0.75);
    const torch::Tensor y = q.forward(x);
    for (int64_t m = 0; m < 9; ++m)
      EXPECT_TRUE(torch::equal(q.forward(x[m].unsqueeze(0))[0], y[m])) << "row " << m;
    EXPECT_TRUE(torch::equal(q.forward(x.slice(0, 2, 7)), y.slice(0, 2, 7)));
    const torch::Tensor wq = q.int8_values().to(torch::kDouble) * q.scales().unsqueeze(1);
    EXPECT_LT((y[3].to(torch::kDouble) - 0.75 * wq.sum(1)).abs().max().item<double>(), 1e-5);
    torch::Tensor bad = x.clone();
    bad[5][17] = std::numeric_limits<float>::quiet_NaN();
    bad[6][0] = std::numeric_limits<float>::infinity();
    const torch::Tensor yb = q.forward(bad);
    EXPECT_TRUE(yb[5].isnan().all().item<bool>());
    EXPECT_TRUE(yb[6].isnan().all().item<bool>());
    EXPECT_TRUE(torch::equal(yb.slice(0, 0, 5), y.slice(0, 0, 5)));
    EXPECT_TRUE(torch::equal(yb.slice(0, 7, 9), y.slice(0, 7, 9)));
    // Every row constant: exact, as any constant row.
    const torch::Tensor flat = torch::full({2, 96}, -1.5f);
    EXPECT_LT((q.forward(flat)[1].to(torch::kDouble) + 1.5 * wq.sum(1)).abs().max().item<double>(),
              1e-5);
    EXPECT_EQ(q.forward(torch::empty({0, 96})).sizes(), (std::vector<int64_t>{0, 70}));
    // A NaN in a row's last, partial block (width 99: whole 16-value blocks end at 96).
    Int8Weight q99(torch::randn({8, 99}), engine);
    torch::Tensor t = torch::randn({3, 99});
    t[1][98] = std::numeric_limits<float>::quiet_NaN();
    const torch::Tensor yt = q99.forward(t);
    EXPECT_TRUE(yt[1].isnan().all().item<bool>());
    EXPECT_FALSE(yt[0].isnan().any().item<bool>() || yt[2].isnan().any().item<bool>());
    EXPECT_THROW(q.forward(torch::randn({2, 95})), Error);  // the wrong width
  }
}

TEST(Int8Linear, RefusesGradients) {
  if (!int8_available()) GTEST_SKIP() << "no int8 engine on this machine";
  Int8Weight q(torch::randn({4, 8}));
  torch::Tensor x = torch::randn({2, 8}).requires_grad_(true);
  EXPECT_THROW(q.forward(x), Error);
  torch::NoGradGuard no_grad;
  EXPECT_EQ(q.forward(x).sizes(), (std::vector<int64_t>{2, 4}));
}

// A T5 of 2 + 2 blocks, 64 wide, 64 tokens.
T5Config int8_test_config() {
  T5Config c;
  c.vocab_size = 64;
  c.d_model = 64;
  c.d_kv = 16;
  c.d_ff = 128;
  c.num_layers = 2;
  c.num_decoder_layers = 2;
  c.num_heads = 4;
  return c;
}

// Two models of int8_test_config's vocabulary give the same logits, bit for bit, on random ids
// and labels.
void expect_same_logits(T5ModelImpl& a, T5ModelImpl& b) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(1);
  const torch::Tensor ids = torch::randint(3, 64, {2, 7}, torch::kLong);
  const torch::Tensor mask = torch::ones({2, 7}, torch::kLong);
  const torch::Tensor labels = torch::randint(3, 64, {2, 3}, torch::kLong);
  EXPECT_TRUE(torch::equal(a.forward(ids, mask, {}, labels).logits,
                           b.forward(ids, mask, {}, labels).logits));
}

TEST(Int8Linear, T5LogitsStayCloseToFp32) {
  if (!int8_available()) GTEST_SKIP() << "no int8 engine on this machine";
  const T5Config c = int8_test_config();
  T5Model model(c);
  model->init_weights(3);
  model->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor ids = torch::randint(3, 64, {2, 9}, torch::kLong);
  torch::Tensor mask = torch::ones({2, 9}, torch::kLong);
  torch::Tensor labels = torch::randint(3, 64, {2, 4}, torch::kLong);
  const torch::Tensor fp32 = model->forward(ids, mask, {}, labels).logits;
  // Per block: encoder q, k, v, o, wi; decoder twice q, k, v, o, then wi (wo stays fp32); and
  // the output layer.
  EXPECT_EQ(quantize_linears_int8(*model, Fp32Weights::kKeep), 2 * 5 + 2 * 9 + 1);
  EXPECT_NE(model->lm_head->int8(), nullptr);
  int64_t int8_layers = 0;
  model->for_each_linear([&](const std::string& path, LinearImpl& linear) {
    EXPECT_EQ(linear.is_int8(), !Int8Keep{}.keeps(path)) << path;
    int8_layers += linear.is_int8();
  });
  EXPECT_EQ(int8_layers, 2 * 5 + 2 * 9);
  const torch::Tensor int8 = model->forward(ids, mask, {}, labels).logits;
  const double rel = ((int8 - fp32).abs().max() / fp32.abs().max()).item<double>();
  EXPECT_GT(rel, 0.0);  // the quantised layers are in use
  EXPECT_LT(rel, 0.1);
}

// Fp32Weights::kFree: the quantised layers' fp32 storages are gone (each of its out x in floats;
// an untied output layer's matrix too, a tied one's is the input embedding and stays), the layers
// keep their shapes, and the logits equal those of the same model quantised with its fp32 weights
// kept. An fp32 layer's weight cannot be freed.
TEST(Int8Linear, FreeingTheFp32WeightsFreesTheirBytesAndChangesNoOutput) {
  if (!int8_available()) GTEST_SKIP() << "no int8 engine on this machine";
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    T5Config c = int8_test_config();
    c.tie_word_embeddings = tied;
    T5Model kept(c), freed(c);
    kept->init_weights(5);
    freed->init_weights(5);
    kept->eval();
    freed->eval();
    auto parameter_bytes = [](T5Model& m) {
      int64_t n = 0;
      for (const auto& p : m->parameters()) n += p.numel() * p.element_size();
      return n;
    };
    const int64_t before = parameter_bytes(freed);
    std::map<std::string, std::pair<int64_t, int64_t>> shapes;
    int64_t quantised_bytes = tied ? 0 : c.vocab_size * c.d_model * 4;
    freed->for_each_linear([&](const std::string& path, LinearImpl& linear) {
      shapes[path] = {linear.out_features(), linear.in_features()};
      if (!Int8Keep{}.keeps(path)) quantised_bytes += linear.weight.numel() * 4;
      if (Int8Keep{}.keeps(path)) {
        EXPECT_THROW(linear.free_fp32_weight(), Error) << path;
      }
    });
    EXPECT_THROW(freed->lm_head->free_fp32_weight(), Error);  // not int8 yet
    EXPECT_EQ(quantize_linears_int8(*kept, Fp32Weights::kKeep), 2 * 5 + 2 * 9 + 1);
    EXPECT_EQ(quantize_linears_int8(*freed, Fp32Weights::kFree), 2 * 5 + 2 * 9 + 1);
    EXPECT_EQ(parameter_bytes(kept), before);
    EXPECT_EQ(parameter_bytes(freed), before - quantised_bytes);
    EXPECT_EQ(freed->shared->weight.numel(), c.vocab_size * c.d_model);
    freed->for_each_linear([&](const std::string& path, LinearImpl& linear) {
      EXPECT_EQ(linear.weight.numel(),
                Int8Keep{}.keeps(path) ? shapes[path].first * shapes[path].second : 0)
          << path;
      EXPECT_EQ(linear.out_features(), shapes[path].first) << path;
      EXPECT_EQ(linear.in_features(), shapes[path].second) << path;
    });
    expect_same_logits(*freed, *kept);
  }
}

// An int8 server frees its base's fp32 weights and still loads adapters onto them
// (serve/adapter_server.h): a model sharing the freed weights (share_weights) still knows their
// shapes (freed_weight_shapes, in_features/out_features, LMHeadImpl::shape, enable_bias), and
// share_int8 runs the base's quantised layers where the model still shares them, and quantises
// and frees its own where a method replaced a weight (`full`: one layer and the output layer's
// matrix, the shared embedding when tied). Its logits equal those of a model built with the same
// weights and quantised on its own.
TEST(Int8Linear, AModelSharingFreedWeightsQuantisesTheOnesReplaced) {
  if (!int8_available()) GTEST_SKIP() << "no int8 engine on this machine";
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    T5Config c = int8_test_config();
    c.tie_word_embeddings = tied;
    T5Model base(c), reference(c);
    base->init_weights(5);
    reference->init_weights(5);
    std::map<std::string, std::vector<int64_t>> want;  // the quantised layers' shapes, as built
    base->for_each_linear([&](const std::string& path, LinearImpl& linear) {
      if (!Int8Keep{}.keeps(path)) want[path + ".weight"] = linear.weight.sizes().vec();
    });
    if (!tied) want["lm_head.weight"] = {c.vocab_size, c.d_model};
    quantize_linears_int8(*base, Fp32Weights::kFree);
    EXPECT_EQ(freed_weight_shapes(*base), want);
    T5Model model = share_weights(*base);
    EXPECT_EQ(freed_weight_shapes(*model), want);
    EXPECT_EQ(model->lm_head->shape(), (std::vector<int64_t>{c.vocab_size, c.d_model}));
    {
      T5Model other = share_weights(*base);  // BitFit's biases on freed layers
      other->lm_head->enable_bias();
      EXPECT_EQ(other->lm_head->bias.sizes(), at::IntArrayRef({c.vocab_size}));
      LinearImpl& wi = *other->encoder->blocks[0]->feed_forward->DenseReluDense->wi;
      wi.enable_bias();
      EXPECT_EQ(wi.bias.sizes(), at::IntArrayRef({c.d_ff}));
    }
    // A method's own weights, as load_adapter_tensors sets them: new storage.
    const std::string replaced = "decoder.block.1.layer.0.SelfAttention.v.weight";
    const std::string matrix = tied ? "shared.weight" : "lm_head.weight";
    torch::manual_seed(3);
    std::map<std::string, torch::Tensor> own = {
        {replaced, torch::randn({c.d_kv * c.num_heads, c.d_model}) * 0.1},
        {matrix, torch::randn({c.vocab_size, c.d_model})}};
    {
      torch::NoGradGuard no_grad;
      for (T5Model* m : {&model, &reference}) {
        auto params = (*m)->named_parameters(true);
        for (const auto& [name, value] : own) {
          ASSERT_NE(params.find(name), nullptr) << name;
          params.find(name)->set_data(value.clone());
        }
      }
    }
    EXPECT_EQ(share_int8(*base, *model, Fp32Weights::kFree), 2);
    std::map<std::string, LinearImpl*> base_layers;
    base->for_each_linear(
        [&](const std::string& path, LinearImpl& linear) { base_layers[path] = &linear; });
    model->for_each_linear([&](const std::string& path, LinearImpl& linear) {
      const LinearImpl& theirs = *base_layers.at(path);
      if (!theirs.is_int8()) {
        EXPECT_FALSE(linear.is_int8()) << path;
      } else if (path + ".weight" == replaced) {
        EXPECT_NE(linear.int8(), theirs.int8()) << path;
        EXPECT_EQ(linear.weight.numel(), 0) << path;  // freed after quantising
      } else {
        EXPECT_EQ(linear.int8(), theirs.int8()) << path;
      }
    });
    EXPECT_NE(model->lm_head->int8(), base->lm_head->int8());
    EXPECT_EQ(model->lm_head->owns_matrix(), false);  // tied: the embedding; untied: freed
    EXPECT_EQ(model->lm_head->matrix().numel(), tied ? c.vocab_size * c.d_model : 0);
    quantize_linears_int8(*reference, Fp32Weights::kKeep);
    model->eval();
    reference->eval();
    expect_same_logits(*model, *reference);
  }
}

// The output layer over the vocabulary, quantised: logits = (h d^-1/2 when tied) W^T + b computed
// in double from the documented grid and the matrix's quantised rows (as any int8 layer, above),
// the shared embedding's rows when tied, the layer's own matrix when not; a bias (BitFit's) added
// in fp32.
TEST(Int8Linear, TheOutputLayerIsQuantisedOnItsDocumentedGrid) {
  if (!int8_available()) GTEST_SKIP() << "no int8 engine on this machine";
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    T5Config c = int8_test_config();
    c.tie_word_embeddings = tied;
    T5Model model(c);
    model->init_weights(7);
    model->eval();
    model->lm_head->enable_bias();
    torch::NoGradGuard no_grad;
    model->lm_head->bias.copy_(torch::randn({c.vocab_size}));
    const torch::Tensor matrix = model->lm_head->matrix().clone();
    quantize_linears_int8(*model, Fp32Weights::kKeep);
    ASSERT_NE(model->lm_head->int8(), nullptr);
    const Int8Weight& q = *model->lm_head->int8();
    // The rows quantised are the matrix's: each within half its step (int8_linear.h).
    const torch::Tensor back = q.int8_values().to(torch::kDouble) * q.scales().unsqueeze(1);
    EXPECT_LE(((back - matrix.to(torch::kDouble)).abs() - q.scales().unsqueeze(1) / 2)
                  .max()
                  .item<double>(),
              1e-6);
    torch::manual_seed(2);
    const torch::Tensor h = torch::randn({2, 3, c.d_model}) * 4.0;
    const torch::Tensor logits = model->lm_head->forward(h).reshape({6, c.vocab_size});
    const double scale = tied ? 1.0 / std::sqrt(static_cast<double>(c.d_model)) : 1.0;
    const torch::Tensor x = h.reshape({6, c.d_model}) * scale;
    // The engine this machine takes (kAuto).
    const bool kernel = int8_rows_available();
    const torch::Tensor want =
        on_documented_grid(x, q, levels(kernel ? Int8Engine::kKernel : Int8Engine::kOneDnn)) +
        model->lm_head->bias.to(torch::kDouble);
    EXPECT_LT(row_error(logits.to(torch::kDouble), want), 1e-4);
  }
}

// --int8-keep-fp32: by default wo stays fp32 and the output layer is quantised; each choice keeps
// exactly the layers it names; other names are refused, naming the option.
TEST(Int8Linear, TheLayersKeptInFp32AreTheOnesNamed) {
  EXPECT_TRUE(Int8Keep{}.wo);
  EXPECT_FALSE(Int8Keep{}.lm_head);
  for (const auto& [list, wo, head] : {std::tuple<std::string, bool, bool>{"wo", true, false},
                                       {"lm_head", false, true},
                                       {"wo,lm_head", true, true},
                                       {"lm_head,wo", true, true},
                                       {"none", false, false}}) {
    SCOPED_TRACE(list);
    const Int8Keep keep = parse_int8_keep(list);
    EXPECT_EQ(keep.wo, wo);
    EXPECT_EQ(keep.lm_head, head);
    EXPECT_EQ(parse_int8_keep(int8_keep_list(keep)).wo, wo);
    EXPECT_EQ(parse_int8_keep(int8_keep_list(keep)).lm_head, head);
    EXPECT_EQ(keep.keeps("decoder.block.1.layer.2.DenseReluDense.wo"), wo);
    EXPECT_FALSE(keep.keeps("decoder.block.1.layer.2.DenseReluDense.wi"));
    if (!int8_available()) continue;
    T5Model model(int8_test_config());
    model->init_weights(1);
    const int64_t n = quantize_linears_int8(*model, Fp32Weights::kKeep, keep);
    int64_t int8_layers = 0, wo_layers = 0;
    model->for_each_linear([&](const std::string& path, LinearImpl& linear) {
      const bool is_wo = path.size() > 3 && path.substr(path.size() - 3) == ".wo";
      wo_layers += is_wo;
      EXPECT_EQ(linear.is_int8(), !(is_wo && wo)) << path;
      int8_layers += linear.is_int8();
    });
    EXPECT_EQ(wo_layers, 4);
    EXPECT_EQ(model->lm_head->int8() == nullptr, head);
    EXPECT_EQ(n, int8_layers + (head ? 0 : 1));
  }
  for (const std::string bad : {"", "wo,", "lm-head", "wo,all"}) {
    try {
      parse_int8_keep(bad);
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("--int8-keep-fp32"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace compacter::nn

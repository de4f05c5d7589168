// T5 blocks, stacks and the encoder-decoder model (spec §1.2 dataflow; HF modeling_t5; UMT5 as
// HF modeling_umt5: the same network with a relative-position bias in every self-attention).
#include "compacter/nn/t5.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "compacter/core/error.h"
#include "compacter/nn/cross_entropy.h"
#include "compacter/nn/dropout.h"
#include "compacter/nn/int8_linear.h"
#include "compacter/nn/linear_kernel.h"

namespace compacter::nn {

const char* hook_site_name(HookSite site) {
  switch (site) {
    case HookSite::kSelfAttention:
      return "self_attention";
    case HookSite::kCrossAttention:
      return "cross_attention";
    case HookSite::kFeedForward:
      return "feed_forward";
  }
  return "?";
}

namespace {

// Additive mask from a [B, S] 0/1 mask: 0 where attended, the dtype's lowest value elsewhere;
// shaped [B, 1, 1, S] to broadcast over heads and queries.
// The dtype's most negative finite value (HF: torch.finfo(dtype).min); a float32 value would
// round to -inf in bf16 and turn 0 * mask into NaN.
double lowest(torch::ScalarType dtype) {
  if (dtype == torch::kBFloat16)
    return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
  if (dtype == torch::kHalf) return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
  return static_cast<double>(std::numeric_limits<float>::lowest());
}

torch::Tensor padding_bias(const torch::Tensor& mask, torch::ScalarType dtype) {
  return (1.0 - mask.to(dtype).unsqueeze(1).unsqueeze(2)) * lowest(dtype);
}

}  // namespace

// ---- sublayers --------------------------------------------------------------------------------

SublayerImpl::SublayerImpl(const T5Config& c) : dropout_(c.dropout_rate) {
  layer_norm = register_module("layer_norm", RMSNorm(c.d_model, c.layer_norm_epsilon));
}

void SublayerImpl::set_output_hook(const std::string& name, std::shared_ptr<OutputHook> hook) {
  check(!hook_, "a hook is already installed at this sublayer");
  hook_ = register_module(name, std::move(hook));
}

void SublayerImpl::remove_output_hook() {
  if (!hook_) return;
  for (const auto& item : named_children())
    if (item.value().get() == hook_.get()) {
      unregister_module(item.key());
      break;
    }
  hook_.reset();
}

torch::Tensor SublayerImpl::finish(const torch::Tensor& h, torch::Tensor y) {
  if (hook_) y = hook_->forward(y);
  return nn::add_dropout(h, y, dropout_, is_training());
}

T5LayerSelfAttentionImpl::T5LayerSelfAttentionImpl(const T5Config& c, bool causal,
                                                   bool has_relative_bias)
    : SublayerImpl(c) {
  SelfAttention = register_module("SelfAttention", T5Attention(c, causal, has_relative_bias));
}

torch::Tensor T5LayerSelfAttentionImpl::forward(const torch::Tensor& h, const torch::Tensor& bias,
                                                AttentionCache* cache) {
  return finish(h, SelfAttention->forward(layer_norm->forward(h), torch::Tensor(), bias, cache));
}

T5LayerCrossAttentionImpl::T5LayerCrossAttentionImpl(const T5Config& c) : SublayerImpl(c) {
  EncDecAttention = register_module("EncDecAttention", T5Attention(c, false, false));
}

torch::Tensor T5LayerCrossAttentionImpl::forward(const torch::Tensor& h,
                                                 const torch::Tensor& encoder_states,
                                                 const torch::Tensor& mask, AttentionCache* cache) {
  return finish(h, EncDecAttention->forward(layer_norm->forward(h), encoder_states, mask, cache));
}

T5DenseImpl::T5DenseImpl(const T5Config& c)
    : activation_(c.activation()), dropout_(c.dropout_rate) {
  if (c.is_gated()) {
    wi_0 = register_module("wi_0", Linear(c.d_model, c.d_ff));
    wi_1 = register_module("wi_1", Linear(c.d_model, c.d_ff));
  } else {
    wi = register_module("wi", Linear(c.d_model, c.d_ff));
  }
  wo = register_module("wo", Linear(c.d_ff, c.d_model));
}

torch::Tensor T5DenseImpl::forward(const torch::Tensor& x) {
  torch::Tensor h;
  if (wi && activation_ == "relu") {
    h = nn::relu_dropout(wi->forward(x), dropout_, is_training());
  } else {
    h = wi ? activation(activation_, wi->forward(x))
           : activation(activation_, wi_0->forward(x)) * wi_1->forward(x);
    h = nn::dropout(h, dropout_, is_training());
  }
  return wo->forward(apply_scale(h, hidden_scale, row_hidden_scale));
}

T5LayerFFImpl::T5LayerFFImpl(const T5Config& c) : SublayerImpl(c) {
  DenseReluDense = register_module("DenseReluDense", T5Dense(c));
}

torch::Tensor T5LayerFFImpl::forward(const torch::Tensor& h) {
  return finish(h, DenseReluDense->forward(layer_norm->forward(h)));
}

// ---- block and stack ----------------------------------------------------------------------------

T5BlockImpl::T5BlockImpl(const T5Config& c, bool is_decoder, bool has_relative_bias) {
  layer = register_module("layer", torch::nn::ModuleList());
  self_attention = T5LayerSelfAttention(c, is_decoder, has_relative_bias);
  layer->push_back(self_attention);
  if (is_decoder) {
    cross_attention = T5LayerCrossAttention(c);
    layer->push_back(cross_attention);
  }
  feed_forward = T5LayerFF(c);
  layer->push_back(feed_forward);
}

torch::Tensor T5BlockImpl::forward(const torch::Tensor& h, const torch::Tensor& self_bias,
                                   const torch::Tensor& encoder_states,
                                   const torch::Tensor& cross_mask, AttentionCache* self_cache,
                                   AttentionCache* cross_cache) {
  torch::Tensor x = self_attention->forward(h, self_bias, self_cache);
  if (cross_attention) x = cross_attention->forward(x, encoder_states, cross_mask, cross_cache);
  return feed_forward->forward(x);
}

std::vector<T5AttentionImpl*> T5BlockImpl::attentions() {
  std::vector<T5AttentionImpl*> out;
  out.push_back(self_attention->SelfAttention.get());
  if (cross_attention) out.push_back(cross_attention->EncDecAttention.get());
  return out;
}

SublayerImpl& T5BlockImpl::sublayer(HookSite site) {
  switch (site) {
    case HookSite::kSelfAttention:
      return *self_attention;
    case HookSite::kCrossAttention:
      check(static_cast<bool>(cross_attention), "encoder blocks have no cross-attention");
      return *cross_attention;
    case HookSite::kFeedForward:
      return *feed_forward;
  }
  throw Error("unknown hook site");
}

T5StackImpl::T5StackImpl(const T5Config& c, bool is_decoder, EmbeddingTable shared)
    : shared_(std::move(shared)),
      dropout_(c.dropout_rate),
      is_decoder_(is_decoder),
      per_layer_bias_(c.per_layer_position_bias()) {
  block = register_module("block", torch::nn::ModuleList());
  const int64_t n = is_decoder ? c.decoder_layers() : c.num_layers;
  for (int64_t i = 0; i < n; ++i) {
    blocks.push_back(T5Block(c, is_decoder, /*has_relative_bias=*/i == 0 || per_layer_bias_));
    block->push_back(blocks.back());
  }
  final_layer_norm = register_module("final_layer_norm", RMSNorm(c.d_model, c.layer_norm_epsilon));
}

void T5StackImpl::set_input_hook(const std::string& name, std::shared_ptr<InputHook> hook) {
  check(!input_hook_, "an input hook is already installed on this stack");
  input_hook_ = register_module(name, std::move(hook));
}

void T5StackImpl::remove_input_hook() {
  if (!input_hook_) return;
  for (const auto& item : named_children())
    if (item.value().get() == input_hook_.get()) {
      unregister_module(item.key());
      break;
    }
  input_hook_.reset();
}

std::pair<torch::Tensor, torch::Tensor> T5StackImpl::encode(const torch::Tensor& ids,
                                                            const torch::Tensor& mask_in) {
  torch::Tensor x = shared_->forward(ids);
  torch::Tensor mask = mask_in.defined() ? mask_in : torch::ones_like(ids);
  if (input_hook_) std::tie(x, mask) = input_hook_->forward(x, mask);
  torch::Tensor h = nn::dropout(x, dropout_, is_training());
  const int64_t len = h.size(1);
  const torch::Tensor mask_bias = padding_bias(mask, h.scalar_type());
  // T5: block 0's position bias serves every block; UMT5: each block adds its own.
  torch::Tensor bias;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (i == 0 || per_layer_bias_)
      bias =
          blocks[i]->self_attention->SelfAttention->position_bias(len, len, 0).to(h.scalar_type()) +
          mask_bias;
    h = blocks[i]->forward(h, bias, {}, {}, nullptr, nullptr);
  }
  h = nn::dropout(final_layer_norm->forward(h), dropout_, is_training());
  return {h, mask};
}

torch::Tensor T5StackImpl::decode(const torch::Tensor& ids, const torch::Tensor& encoder_states,
                                  const torch::Tensor& encoder_mask, DecoderCache* cache) {
  torch::Tensor h = nn::dropout(shared_->forward(ids), dropout_, is_training());
  const auto dtype = h.scalar_type();
  const int64_t len = ids.size(1);
  const int64_t past = cache ? cache->length : 0;
  const int64_t total = past + len;
  torch::Tensor causal;  // undefined for one new position, which sees every key
  if (len > 1) {         // causal: query past + i sees keys 0 .. past + i
    auto opts = torch::TensorOptions().dtype(torch::kLong).device(h.device());
    torch::Tensor q = torch::arange(past, total, opts).unsqueeze(1);
    torch::Tensor k = torch::arange(total, opts).unsqueeze(0);
    causal = (1.0 - (k <= q).to(dtype)).view({1, 1, len, total}) * lowest(dtype);
  }
  // T5: block 0's position bias serves every block; UMT5: each block adds its own.
  torch::Tensor key_padding;  // [B, 1, 1, total] when the cache holds left-padded rows
  if (cache && cache->key_mask.defined()) {
    cache->key_mask = torch::cat(
        {cache->key_mask, torch::ones({ids.size(0), len}, cache->key_mask.options())}, 1);
    key_padding = padding_bias(cache->key_mask, dtype);
  }
  auto self_bias = [&](size_t i) {
    torch::Tensor b =
        blocks[i]->self_attention->SelfAttention->position_bias(len, total, past).to(dtype);
    if (causal.defined()) b = b + causal;
    return key_padding.defined() ? b + key_padding : b;
  };
  torch::Tensor cross_mask =
      encoder_mask.defined() ? padding_bias(encoder_mask, dtype) : torch::Tensor();
  if (cache && cache->self_attention.empty()) {
    cache->self_attention.resize(blocks.size());
    cache->cross_attention.resize(blocks.size());
  }
  torch::Tensor bias;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (i == 0 || per_layer_bias_) bias = self_bias(i);
    h = blocks[i]->forward(h, bias, encoder_states, cross_mask,
                           cache ? &cache->self_attention[i] : nullptr,
                           cache ? &cache->cross_attention[i] : nullptr);
  }
  if (cache) cache->length = total;
  return nn::dropout(final_layer_norm->forward(h), dropout_, is_training());
}

// ---- output layer and model ---------------------------------------------------------------------

LMHeadImpl::LMHeadImpl(const T5Config& c, EmbeddingTable shared)
    : shared_(std::move(shared)),
      scale_(c.tie_word_embeddings ? 1.0 / std::sqrt(static_cast<double>(c.d_model)) : 1.0) {
  if (!c.tie_word_embeddings)
    weight = register_parameter("weight", torch::empty({c.vocab_size, c.d_model}));
}

torch::Tensor LMHeadImpl::forward(const torch::Tensor& h) {
  const torch::Tensor x = scale_ == 1.0 ? h : h * scale_;
  torch::Tensor y;
  if (int8_) {
    y = int8_->forward(x);
    if (bias.defined() && !row_bias) y = y + bias;
  } else {
    y = nn::linear(x, matrix(), row_bias ? torch::Tensor() : bias);
  }
  return row_bias ? y + row_bias->for_rows(y) : y;
}

bool LMHeadImpl::owns_matrix() const {
  return weight.defined() && weight.numel() > 0 && weight.data_ptr() != shared_->weight.data_ptr();
}

void LMHeadImpl::free_fp32_weight() {
  check(int8_ != nullptr && owns_matrix(),
        "only an int8 output layer's own (untied) fp32 matrix can be freed");
  torch::NoGradGuard no_grad;
  weight.set_();  // the tensor every holder of this parameter sees, now [0] with no storage
}

std::vector<int64_t> LMHeadImpl::shape() const {
  if (matrix().dim() == 2) return matrix().sizes().vec();
  if (int8_) return {int8_->out_features(), int8_->in_features()};
  return shared_->weight.sizes().vec();  // freed in the model it shares: the embedding's shape
}

void LMHeadImpl::enable_bias() {
  if (bias.defined()) return;
  bias = register_parameter("bias", torch::zeros({shape()[0]}, matrix().options()));
}

T5ModelImpl::T5ModelImpl(const T5Config& c, bool initialise) : config_(c) {
  config_.validate();
  shared = register_module("shared", EmbeddingTable(c.vocab_size, c.d_model));
  encoder = register_module("encoder", T5Stack(c, false, shared));
  decoder = register_module("decoder", T5Stack(c, true, shared));
  lm_head = register_module("lm_head", LMHead(c, shared));
  if (initialise) init_weights(0);
}

Seq2SeqOutput T5ModelImpl::forward(const torch::Tensor& input_ids,
                                   const torch::Tensor& attention_mask,
                                   const torch::Tensor& decoder_input_ids,
                                   const torch::Tensor& labels) {
  check(decoder_input_ids.defined() || labels.defined(),
        "forward needs decoder_input_ids or labels");
  if (before_forward) before_forward();
  Seq2SeqOutput out;
  auto [enc, enc_mask] = encoder->encode(input_ids, attention_mask);
  out.encoder_last_hidden_state = enc;
  torch::Tensor dec_ids =
      decoder_input_ids.defined()
          ? decoder_input_ids
          : shift_right(labels, config_.decoder_start_token_id, config_.pad_token_id);
  torch::Tensor dec = decoder->decode(dec_ids, enc, enc_mask, nullptr);
  out.logits = lm_head->forward(dec);
  if (labels.defined()) {
    // Half-precision logits are scored in fp32; fp32 and fp64 keep their own precision.
    torch::Tensor flat = out.logits.reshape({-1, out.logits.size(-1)});
    if (flat.scalar_type() == torch::kBFloat16 || flat.scalar_type() == torch::kHalf)
      flat = flat.to(torch::kFloat32);
    out.loss = nn::cross_entropy(flat, labels.reshape({-1}), /*ignore_index=*/-100);
  }
  return out;
}

void T5ModelImpl::resize_vocab(int64_t rows) {
  check(rows > 0, "vocabulary size must be positive, got ", rows);
  torch::NoGradGuard no_grad;
  auto resize = [&](const torch::Tensor& w) {
    torch::Tensor fresh = torch::empty({rows, w.size(1)}, w.options()).normal_(0.0, 1.0);
    const int64_t keep = std::min(rows, w.size(0));
    fresh.narrow(0, 0, keep).copy_(w.narrow(0, 0, keep));
    return fresh;
  };
  shared->weight.set_data(resize(shared->weight));
  if (lm_head->weight.defined()) lm_head->weight.set_data(resize(lm_head->weight));
  if (lm_head->bias.defined()) {
    torch::Tensor b = torch::zeros({rows}, lm_head->bias.options());
    const int64_t keep = std::min(rows, lm_head->bias.size(0));
    b.narrow(0, 0, keep).copy_(lm_head->bias.narrow(0, 0, keep));
    lm_head->bias.set_data(b);
  }
  config_.vocab_size = rows;
}

T5Model share_weights(T5ModelImpl& base) {
  T5Model copy(base.config(), false);
  torch::NoGradGuard no_grad;
  auto link = [&](const auto& source, auto targets, const char* kind) {
    for (auto& item : targets) {
      const torch::Tensor* from = source.find(item.key());
      check(from != nullptr, "share_weights: the base model lacks ", kind, " \"", item.key(), "\"");
      item.value().set_data(*from);
    }
    check(source.size() == targets.size(), "share_weights: the base model has ", source.size(), " ",
          kind, "s, a plain T5 of its config ", targets.size(), " (is a method attached to it?)");
  };
  link(base.named_parameters(true), copy->named_parameters(true), "parameter");
  link(base.named_buffers(true), copy->named_buffers(true), "buffer");
  copy->train(base.is_training());
  return copy;
}

void T5ModelImpl::init_weights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  auto normal = [&](torch::Tensor& w, double std) {
    torch::Tensor t = torch::empty(w.sizes(), torch::kFloat32);
    t.normal_(0.0, std, gen);
    w.copy_(t);
  };
  const double d = static_cast<double>(config_.d_model);
  const double dkv = static_cast<double>(config_.d_kv);
  const double h = static_cast<double>(config_.num_heads);
  normal(shared->weight, 1.0);
  if (lm_head->weight.defined()) normal(lm_head->weight, 1.0);
  for (T5Stack stack : {encoder, decoder}) {
    for (auto& b : stack->blocks) {
      for (T5AttentionImpl* a : b->attentions()) {
        normal(a->q->weight, 1.0 / std::sqrt(d * dkv));
        normal(a->k->weight, 1.0 / std::sqrt(d));
        normal(a->v->weight, 1.0 / std::sqrt(d));
        normal(a->o->weight, 1.0 / std::sqrt(h * dkv));
        if (a->relative_attention_bias)
          normal(a->relative_attention_bias->weight, 1.0 / std::sqrt(d));
      }
      auto& ff = b->feed_forward->DenseReluDense;
      for (auto* lin : {&ff->wi, &ff->wi_0, &ff->wi_1})
        if (*lin) normal((*lin)->weight, 1.0 / std::sqrt(d));
      normal(ff->wo->weight, 1.0 / std::sqrt(static_cast<double>(config_.d_ff)));
    }
  }
  for (RMSNormImpl* ln : layer_norms()) ln->weight.fill_(1.0);
}

void T5ModelImpl::for_each_sublayer(
    const std::function<void(const std::string&, int64_t, HookSite, SublayerImpl&)>& fn) {
  for (const char* name : {"encoder", "decoder"}) {
    T5Stack stack = name[0] == 'e' ? encoder : decoder;
    for (size_t i = 0; i < stack->blocks.size(); ++i) {
      T5Block& b = stack->blocks[i];
      fn(name, static_cast<int64_t>(i), HookSite::kSelfAttention, *b->self_attention);
      if (b->cross_attention)
        fn(name, static_cast<int64_t>(i), HookSite::kCrossAttention, *b->cross_attention);
      fn(name, static_cast<int64_t>(i), HookSite::kFeedForward, *b->feed_forward);
    }
  }
}

std::vector<RMSNormImpl*> T5ModelImpl::layer_norms() {
  std::vector<RMSNormImpl*> out;
  for_each_sublayer([&](const std::string&, int64_t, HookSite, SublayerImpl& s) {
    out.push_back(s.layer_norm.get());
  });
  out.push_back(encoder->final_layer_norm.get());
  out.push_back(decoder->final_layer_norm.get());
  return out;
}

std::vector<LinearImpl*> T5ModelImpl::linears() {
  std::vector<LinearImpl*> out;
  for_each_linear([&](const std::string&, LinearImpl& linear) { out.push_back(&linear); });
  return out;
}

void T5ModelImpl::for_each_attention(
    const std::function<void(const std::string&, T5AttentionImpl&)>& fn) {
  for (const char* name : {"encoder", "decoder"}) {
    T5Stack stack = name[0] == 'e' ? encoder : decoder;
    for (size_t i = 0; i < stack->blocks.size(); ++i) {
      T5Block& b = stack->blocks[i];
      const std::string path = cat(name, ".block.", i, ".layer.");
      fn(path + "0.SelfAttention", *b->self_attention->SelfAttention);
      if (b->cross_attention) fn(path + "1.EncDecAttention", *b->cross_attention->EncDecAttention);
    }
  }
}

void T5ModelImpl::for_each_feed_forward(
    const std::function<void(const std::string&, T5DenseImpl&)>& fn) {
  for (const char* name : {"encoder", "decoder"}) {
    T5Stack stack = name[0] == 'e' ? encoder : decoder;
    for (size_t i = 0; i < stack->blocks.size(); ++i) {
      T5Block& b = stack->blocks[i];
      fn(cat(name, ".block.", i, ".layer.", b->cross_attention ? 2 : 1, ".DenseReluDense"),
         *b->feed_forward->DenseReluDense);
    }
  }
}

void T5ModelImpl::for_each_linear(const std::function<void(const std::string&, LinearImpl&)>& fn) {
  for (const char* name : {"encoder", "decoder"}) {
    T5Stack stack = name[0] == 'e' ? encoder : decoder;
    for (size_t i = 0; i < stack->blocks.size(); ++i) {
      T5Block& b = stack->blocks[i];
      const std::string path = cat(name, ".block.", i, ".layer.");
      const std::string attention[2] = {path + "0.SelfAttention", path + "1.EncDecAttention"};
      int which = 0;
      for (T5AttentionImpl* a : b->attentions()) {
        const std::string& p = attention[which++];
        fn(p + ".q", *a->q);
        fn(p + ".k", *a->k);
        fn(p + ".v", *a->v);
        fn(p + ".o", *a->o);
      }
      auto& ff = b->feed_forward->DenseReluDense;
      const std::string p = cat(path, b->cross_attention ? 2 : 1, ".DenseReluDense");
      if (ff->wi) fn(p + ".wi", *ff->wi);
      if (ff->wi_0) fn(p + ".wi_0", *ff->wi_0);
      if (ff->wi_1) fn(p + ".wi_1", *ff->wi_1);
      fn(p + ".wo", *ff->wo);
    }
  }
}

torch::Tensor shift_right(const torch::Tensor& labels, int64_t start_id, int64_t pad_id) {
  torch::Tensor out = torch::empty_like(labels);
  out.select(1, 0).fill_(start_id);
  if (labels.size(1) > 1)
    out.narrow(1, 1, labels.size(1) - 1).copy_(labels.narrow(1, 0, labels.size(1) - 1));
  return out.masked_fill(out == -100, pad_id);
}

}  // namespace compacter::nn

// T5 encoder-decoder (v1.0 and v1.1), numerically the model of HF T5ForConditionalGeneration;
// also mT5 (the same network) and UMT5 (config.per_layer_position_bias(): a relative-position
// bias in the self-attention of every block, as HF UMT5ForConditionalGeneration).
// Module names mirror Hugging Face's, so named_parameters() gives HF tensor names
// ("encoder.block.0.layer.0.SelfAttention.q.weight"); io/hf_names.h holds the name table.
// Hook points (nn/hooks.h) let fine-tuning methods attach without T5 naming any of them.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "compacter/io/t5_config.h"
#include "compacter/nn/attention.h"
#include "compacter/nn/hooks.h"
#include "compacter/nn/layers.h"
#include "compacter/nn/rows.h"

namespace compacter::nn {

// A pre-norm residual sublayer with an optional output hook: h + Dropout(hook(f(LN(h)))).
class SublayerImpl : public torch::nn::Module {
 public:
  SublayerImpl(const T5Config& c);
  // Installs `hook` under `name` (its parameters appear as <sublayer path>.<name>.*).
  void set_output_hook(const std::string& name, std::shared_ptr<OutputHook> hook);
  const std::shared_ptr<OutputHook>& output_hook() const { return hook_; }
  void remove_output_hook();  // unregisters the hook, if any
  RMSNorm layer_norm{nullptr};

 protected:
  torch::Tensor finish(const torch::Tensor& h, torch::Tensor y);  // hook, dropout, residual
  double dropout_;

 private:
  std::shared_ptr<OutputHook> hook_;
};

// layer.0 of a block: "SelfAttention" + "layer_norm".
class T5LayerSelfAttentionImpl : public SublayerImpl {
 public:
  T5LayerSelfAttentionImpl(const T5Config& c, bool causal, bool has_relative_bias);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& bias, AttentionCache* cache);
  T5Attention SelfAttention{nullptr};
};
TORCH_MODULE(T5LayerSelfAttention);

// layer.1 of a decoder block: "EncDecAttention" + "layer_norm" (no position bias).
class T5LayerCrossAttentionImpl : public SublayerImpl {
 public:
  explicit T5LayerCrossAttentionImpl(const T5Config& c);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& encoder_states,
                        const torch::Tensor& mask, AttentionCache* cache);
  T5Attention EncDecAttention{nullptr};
};
TORCH_MODULE(T5LayerCrossAttention);

// "DenseReluDense": wi -> act -> dropout -> wo, or act(wi_0) * wi_1 -> dropout -> wo (gated).
class T5DenseImpl : public torch::nn::Module {
 public:
  explicit T5DenseImpl(const T5Config& c);
  torch::Tensor forward(const torch::Tensor& x);
  Linear wi{nullptr}, wi_0{nullptr}, wi_1{nullptr}, wo{nullptr};
  // Scale point (nn/hooks.h): when defined, the hidden activation (d_ff features, after the
  // dropout: the input of wo) is multiplied feature by feature by this tensor (d_ff elements).
  torch::Tensor hidden_scale;
  // Per-row hidden scale (nn/rows.h: a table [V, d_ff]), used instead when set.
  std::shared_ptr<RowTable> row_hidden_scale;

 private:
  std::string activation_;
  double dropout_;
};
TORCH_MODULE(T5Dense);

// The last layer of a block: "DenseReluDense" + "layer_norm".
class T5LayerFFImpl : public SublayerImpl {
 public:
  explicit T5LayerFFImpl(const T5Config& c);
  torch::Tensor forward(const torch::Tensor& h);
  T5Dense DenseReluDense{nullptr};
};
TORCH_MODULE(T5LayerFF);

// Per-layer caches of an incremental decoder.
struct DecoderCache {
  std::vector<AttentionCache> self_attention;
  std::vector<AttentionCache> cross_attention;
  int64_t length = 0;  // decoder positions already processed
  // Rows of different lengths in one cache (a server's continuous batching): [B, length], 1 for
  // a position the row holds, 0 for padding in front of it; undefined: every position is real.
  // With each row's positions right-aligned, the relative distance of every key to the new
  // position is the same for all rows, so one position bias serves them all.
  torch::Tensor key_mask;
};

class T5BlockImpl : public torch::nn::Module {
 public:
  T5BlockImpl(const T5Config& c, bool is_decoder, bool has_relative_bias);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& self_bias,
                        const torch::Tensor& encoder_states, const torch::Tensor& cross_mask,
                        AttentionCache* self_cache, AttentionCache* cross_cache);
  // The sublayer at a hook site (throws for cross-attention in an encoder block).
  SublayerImpl& sublayer(HookSite site);
  std::vector<T5AttentionImpl*> attentions();  // self-attention, then cross-attention if any
  torch::nn::ModuleList layer{nullptr};        // HF "layer.0", "layer.1", ("layer.2")
  T5LayerSelfAttention self_attention{nullptr};
  T5LayerCrossAttention cross_attention{nullptr};  // decoder only
  T5LayerFF feed_forward{nullptr};
};
TORCH_MODULE(T5Block);

class T5StackImpl : public torch::nn::Module {
 public:
  T5StackImpl(const T5Config& c, bool is_decoder, EmbeddingTable shared);
  // Encoder: ids [B, S], mask [B, S] -> hidden [B, S', d] and the (possibly extended) mask.
  std::pair<torch::Tensor, torch::Tensor> encode(const torch::Tensor& ids,
                                                 const torch::Tensor& mask);
  // Decoder: ids [B, T] (the new positions only when a cache is given) -> hidden [B, T, d].
  torch::Tensor decode(const torch::Tensor& ids, const torch::Tensor& encoder_states,
                       const torch::Tensor& encoder_mask, DecoderCache* cache);
  void set_input_hook(const std::string& name, std::shared_ptr<InputHook> hook);
  const std::shared_ptr<InputHook>& input_hook() const { return input_hook_; }
  void remove_input_hook();  // unregisters the hook, if any

  torch::nn::ModuleList block{nullptr};
  std::vector<T5Block> blocks;  // typed view of `block`
  RMSNorm final_layer_norm{nullptr};

 private:
  EmbeddingTable shared_;  // not registered here: owned by the model ("shared")
  std::shared_ptr<InputHook> input_hook_;
  double dropout_;
  bool is_decoder_;
  bool per_layer_bias_;  // UMT5: every block's self-attention has its own position bias
};
TORCH_MODULE(T5Stack);

class Int8Weight;

// The output layer: logits = h' W^T (+ b), W = lm_head.weight (v1.1) or the shared embedding
// (v1.0, where h' = h * d_model^-0.5).
class LMHeadImpl : public torch::nn::Module {
 public:
  LMHeadImpl(const T5Config& c, EmbeddingTable shared);
  torch::Tensor forward(const torch::Tensor& h);
  void enable_bias();
  const torch::Tensor& matrix() const { return weight.defined() ? weight : shared_->weight; }
  // The matrix's shape [vocabulary rows, d_model], also once its fp32 copy is freed.
  std::vector<int64_t> shape() const;
  torch::Tensor weight;                // undefined when tied
  torch::Tensor bias;                  // undefined unless enabled
  std::shared_ptr<RowTable> row_bias;  // per-row bias (nn/rows.h), used instead when set
  // Inference with the matrix quantised to int8 (nn/int8_linear.h); nullptr: fp32.
  void set_int8(std::shared_ptr<const Int8Weight> w) { int8_ = std::move(w); }
  const std::shared_ptr<const Int8Weight>& int8() const { return int8_; }
  // Whether the layer has a matrix of its own (untied; not freed), not the shared embedding.
  bool owns_matrix() const;
  // For an int8 output layer that owns its matrix, whose model is final: frees `weight`'s storage
  // (as LinearImpl::free_fp32_weight). Throws unless the layer is int8 and owns its matrix.
  void free_fp32_weight();

 private:
  EmbeddingTable shared_;
  double scale_;
  std::shared_ptr<const Int8Weight> int8_;
};
TORCH_MODULE(LMHead);

struct Seq2SeqOutput {
  torch::Tensor logits;                     // [B, T, V]
  torch::Tensor encoder_last_hidden_state;  // [B, S, d]
  torch::Tensor loss;                       // scalar; undefined without labels
};

class T5ModelImpl : public torch::nn::Module {
 public:
  // initialise = false leaves the weights uninitialised (for counting, or before loading).
  explicit T5ModelImpl(const T5Config& c, bool initialise = true);

  // Full teacher-forced pass. decoder_input_ids may be undefined when labels are given (they are
  // then labels shifted right). Loss: mean cross-entropy over labels != -100.
  Seq2SeqOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& decoder_input_ids, const torch::Tensor& labels);

  // Cuts or extends the vocabulary to `rows` (new rows ~ N(0, 1) like HF's resize).
  void resize_vocab(int64_t rows);
  // Hugging Face's _init_weights for a fresh model (initializer_factor 1).
  void init_weights(uint64_t seed);

  // Visits every sublayer at every hook site: stack is "encoder" or "decoder".
  void for_each_sublayer(const std::function<void(const std::string& stack, int64_t block,
                                                  HookSite site, SublayerImpl& sublayer)>& fn);
  // All RMS norms (block norms and final norms) and all linear layers of the backbone.
  std::vector<RMSNormImpl*> layer_norms();
  std::vector<LinearImpl*> linears();
  // Visitors by Hugging Face module path, blocks in order, encoder first:
  //   attentions    "encoder.block.0.layer.0.SelfAttention",
  //   "decoder.block.0.layer.1.EncDecAttention" feed-forwards
  //   "encoder.block.0.layer.1.DenseReluDense", "decoder.block.0.layer.2.DenseReluDense" linears
  //   each attention's q, k, v, o, then the feed-forward's wi (or wi_0, wi_1) and
  //                 wo, per block, as "<path>.q" ... (the order of linears()).
  void for_each_attention(
      const std::function<void(const std::string& path, T5AttentionImpl& attention)>& fn);
  void for_each_feed_forward(
      const std::function<void(const std::string& path, T5DenseImpl& feed_forward)>& fn);
  void for_each_linear(const std::function<void(const std::string& path, LinearImpl& linear)>& fn);

  const T5Config& config() const { return config_; }

  // Called at the start of forward() and of greedy generation when set: a method whose tensors
  // are computed from others (a reparameterisation) recomputes them here.
  std::function<void()> before_forward;

  // Which variant of its per-row tensors each batch row uses (nn/rows.h); null: none. Whoever
  // repeats, drops or reorders a batch's rows between forward calls keeps it in step.
  std::shared_ptr<RowVariants> rows;

  EmbeddingTable shared{nullptr};
  T5Stack encoder{nullptr}, decoder{nullptr};
  LMHead lm_head{nullptr};

 private:
  T5Config config_;
};
TORCH_MODULE(T5Model);

// A second model of `base`'s shape whose parameters and buffers are `base`'s tensors: the same
// storage, no copy (each its own autograd leaf, with its own requires_grad), in `base`'s mode.
// For serving several fine-tuned variants on one set of base weights: whoever changes a tensor
// of either model must give it new storage (set_data), never write into it. Throws when `base`
// has tensors a plain T5 of its config lacks (something attached to it).
T5Model share_weights(T5ModelImpl& base);

// labels shifted right: [start, l0, l1, ...], with -100 replaced by pad.
torch::Tensor shift_right(const torch::Tensor& labels, int64_t start_id, int64_t pad_id);

}  // namespace compacter::nn

// The adapter-family methods (spec §2 placements, §3.2-§3.9, §1.3 trainable sets, §7 counts):
// adapter, pfeiffer, adapterdrop, lowrank, phm (PHM-Adapter), compacter, compacter++.
// An explicit table (adapter_methods()) lists them; each option is declared once in
// COMPACTER_PEFT_OPTIONS, which can drive a CLI or JSON reader.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "compacter/nn/t5.h"
#include "compacter/peft/adapters.h"

namespace compacter::peft {

// X(type, name, default, help). Defaults are the generic ones; method_defaults() applies each
// method's paper settings on top (e.g. phm: n = 12, per-layer A, full B).
#define COMPACTER_PEFT_OPTIONS(X)                                                                \
  X(int64_t, reduction_factor, 32, "bottleneck d = d_model / reduction_factor (24 for t5-base)") \
  X(int64_t, n, 4, "PHM: Kronecker terms (hypercomplex_division); d_model and d divisible by n") \
  X(int64_t, rank, 1, "rank of LowRank W and of the factorised PHM B_i (phm_rank)")              \
  X(bool, shared_phm_rule, true, "PHM: one model-wide A (Compacter) instead of one per layer")   \
  X(bool, factorized_phm, true, "PHM: B_i = s_i t_i^T of rank `rank` instead of a full B_i")     \
  X(bool, learn_phm, true, "PHM: train A")                                                       \
  X(std::string, phm_c_init, "normal", "init of A: normal | uniform (spec §3.6 table)")          \
  X(double, phm_init_range, 1e-4, "sigma of the shared A, and of W when weight_init = normal")   \
  X(std::string, weight_init, "glorot-uniform",                                                  \
    "PHM / LowRank weights: glorot-uniform | glorot-normal | normal (PHM only)")                 \
  X(std::string, non_linearity, "gelu_new", "adapter activation: relu|gelu|gelu_new|silu|swish") \
  X(bool, layer_norm_before, false, "nn.LayerNorm before the adapter (spec §9 #19: off)")        \
  X(bool, layer_norm_after, false, "nn.LayerNorm after the adapter (reference parser: on)")      \
  X(bool, train_layer_norms, true, "train every T5 layer-norm scale (spec §1.3)")                \
  X(bool, train_lm_head, false, "train lm_head (tied: also the input embedding, spec §9 #22)")   \
  X(std::string, adapterdrop_layers, "0-4",                                                      \
    "AdapterDrop: blocks of both stacks without adapters (e.g. \"0-4\" or \"0,1,2\")")

struct PeftOptions {
#define COMPACTER_DECLARE_PEFT_FIELD(type, name, def, help) type name = def;
  COMPACTER_PEFT_OPTIONS(COMPACTER_DECLARE_PEFT_FIELD)
#undef COMPACTER_DECLARE_PEFT_FIELD
};

// One row of the method table.
struct MethodInfo {
  const char* name;
  const char* summary;
  ProjectionKind kind;
  bool self_attention;             // adapter after self-attention
  bool feed_forward;               // adapter after the feed-forward sublayer
  bool adapterdrop;                // blocks listed in adapterdrop_layers get none
  void (*defaults)(PeftOptions&);  // the method's paper settings
};

const std::vector<MethodInfo>& adapter_methods();
// Throws Error listing the known names for an unknown method.
const MethodInfo& find_method(const std::string& name);
// The generic defaults with the method's paper settings applied.
PeftOptions method_defaults(const std::string& method);
// Blocks listed in "0-4" / "0,1,2" / "" form.
std::vector<int64_t> parse_block_list(const std::string& text);

struct Attachment {
  std::string method;
  int64_t adapters = 0;       // adapter hooks installed
  int64_t bottleneck = 0;     // d
  torch::Tensor shared_rule;  // the model-level A ("phm_rule"), when shared
};

// Installs the method's adapters on `model` (hook name "adapter"; never after cross-attention)
// and sets requires_grad: the backbone frozen except the T5 layer-norm scales (and lm_head when
// asked). A shared A is registered once on the model as "phm_rule". New tensors take the dtype
// and device of the model's embedding. Throws Error for bad options.
Attachment attach(const std::string& method, const PeftOptions& options, nn::T5ModelImpl& model,
                  uint64_t seed);

// Exactly the trainable tensors of `module`, each once (shared A and tied tensors counted once).
std::vector<torch::Tensor> trainable_parameters(torch::nn::Module& module);
// Sum of numel over trainable_parameters(module) (spec §7.1).
int64_t count_trainable(torch::nn::Module& module);
// Sum of numel over all parameters, each tensor once.
int64_t count_parameters(torch::nn::Module& module);

}  // namespace compacter::peft

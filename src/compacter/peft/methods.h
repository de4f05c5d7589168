// The registry of the paper's fine-tuning methods (spec §1.3 trainable sets, §2 placements, §3,
// §7 counts): full, the adapter family (adapter, pfeiffer, adapterdrop, lowrank, phm, compacter,
// compacter++), bitfit, prompt-r, prompt-t and said. One explicit table (all_methods()) lists
// them; each option is declared once in COMPACTER_PEFT_OPTIONS, which drives the CLI and the
// adapter_config.json reader and writer.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

#include "compacter/core/options.h"
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
    "AdapterDrop: blocks of both stacks without adapters (e.g. \"0-4\" or \"0,1,2\")")           \
  X(int64_t, prompt_length, 100, "prompt tuning: prompt rows prepended in the encoder")          \
  X(std::string, prompt_init, "random", "prompt init: random (prompt-r) | vocab (prompt-t)")     \
  X(double, prompt_init_range, 0.5, "prompt-r: U(-range, range)")                                \
  X(int64_t, intrinsic_dim, 20000, "Intrinsic-SAID d0: theta_d plus the lambdas")                \
  X(bool, said_exact_gradient, false,                                                            \
    "SAID: exact gradient (false: the reference's 1/L_j scaling, spec §3.12)")                   \
  X(bool, said_project_lm_head, false,                                                           \
    "SAID: a tied output layer follows the embedding (false: stays pretrained, §3.12)")

struct PeftOptions {
  COMPACTER_OPTIONS_BODY(COMPACTER_PEFT_OPTIONS)
};

enum class Family { kFull, kAdapter, kBitFit, kPrompt, kSaid };

// One row of the method table.
struct MethodInfo {
  const char* name;
  const char* summary;
  Family family;
  ProjectionKind kind;             // adapter family only
  bool self_attention;             // adapter after self-attention
  bool feed_forward;               // adapter after the feed-forward sublayer
  bool adapterdrop;                // blocks listed in adapterdrop_layers get none
  void (*defaults)(PeftOptions&);  // the method's paper settings
};

const std::vector<MethodInfo>& all_methods();
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

// Attaches the method and sets requires_grad to exactly its trainable set (spec §1.3):
// - full: everything;
// - adapter family: adapters as output hooks named "adapter" (never after cross-attention), the
//   backbone frozen except the T5 layer-norm scales (and lm_head when asked); a shared A is
//   registered once on the model as "phm_rule";
// - bitfit: new zero biases (bitfit.h); prompt-r/-t: "encoder.prompt.weight" (prompt.h);
//   said: "said.theta_d" and "said.lambda" (said.h).
// New tensors take the dtype and device of the model's embedding; `seed` drives every random
// init. Throws Error for bad options.
Attachment attach(const std::string& method, const PeftOptions& options, nn::T5ModelImpl& model,
                  uint64_t seed);

// Exactly the trainable tensors of `module` with their names, each once (shared A and tied
// tensors listed once, under their first name), in named_parameters() order.
std::vector<std::pair<std::string, torch::Tensor>> trainable_named_parameters(
    torch::nn::Module& module);
// The same tensors without their names.
std::vector<torch::Tensor> trainable_parameters(torch::nn::Module& module);
// Sum of numel over trainable_parameters(module) (spec §7.1).
int64_t count_trainable(torch::nn::Module& module);
// Sum of numel over all parameters, each tensor once.
int64_t count_parameters(torch::nn::Module& module);

// Trainable parameters split the way Table 1 and Appendix B report them (spec §7.1).
struct ParameterBreakdown {
  int64_t backbone = 0;           // the T5 tensors (each once): the denominator of the percentage
  int64_t trainable = 0;          // count_trainable
  int64_t added = 0;              // trainable tensors a method adds (not T5's): "#Total" numerator
  int64_t adapters = 0;           // adapter modules (their projections, biases and own A, norms)
  int64_t shared_rule = 0;        // Compacter's shared A
  int64_t layer_norms = 0;        // trainable T5 norm scales (all 2 + 3 per block + final)
  int64_t block_layer_norms = 0;  // the same, without the final norms (Appendix B's "LN")
  int64_t adapter_biases = 0;     // biases of the adapters' projections (Appendix B's "B")
  int64_t biases = 0;             // BitFit biases
  int64_t prompt = 0;             // prompt tuning
  int64_t intrinsic = 0;          // SAID theta_d and lambda
  int64_t backbone_trained = 0;   // trainable T5 weights other than norms (full FT, lm_head)
  double percent() const { return 100.0 * static_cast<double>(trainable) / backbone; }
  // 1 + tasks * added / backbone (spec §7.1); full fine-tuning: one model per task.
  double total_for_tasks(int64_t tasks, bool full) const;
};
ParameterBreakdown parameter_breakdown(nn::T5ModelImpl& model);

}  // namespace compacter::peft

// The registry of fine-tuning methods and what every method has in common. Each method is one
// record (MethodInfo: name, summary, defaults, the options it uses, attach, the category of each
// of its tensors, ...) defined in its own file(s); all_methods() lists them, one line each:
// the paper's twelve (spec §1.3 trainable sets, §2 placements, §3, §7 counts) - full, the adapter
// family (adapter, pfeiffer, adapterdrop, lowrank, phm, compacter, compacter++), bitfit,
// prompt-r, prompt-t and said - then lora and ia3 (Hugging Face PEFT's). Each option is declared
// once in COMPACTER_PEFT_OPTIONS, which drives the CLI and the adapter_config.json reader and
// writer. docs/adding-a-method.md walks through adding a method.
#pragma once
#include <torch/nn/module.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "compacter/core/options.h"
#include "compacter/nn/t5.h"
#include "compacter/peft/adapters.h"

namespace compacter::peft {

// X(type, name, default, help). Defaults are the generic ones; method_defaults() applies each
// method's paper settings on top (e.g. phm: n = 12, per-layer A, full B).
#define COMPACTER_PEFT_OPTIONS(X)                                                                \
  X(int64_t, reduction_factor, 32, "bottleneck d = d_model / reduction_factor (24 for t5-base)") \
  X(int64_t, n, 4, "PHM: Kronecker terms (hypercomplex_division); d_model and d divisible by n") \
  X(int64_t, rank, 1, "rank of LowRank W, of the factorised PHM B_i (phm_rank) and LoRA's r")    \
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
    "SAID: a tied output layer follows the embedding (false: stays pretrained, §3.12)")          \
  X(double, lora_alpha, 16.0, "LoRA: the update B A is scaled by lora_alpha / rank")             \
  X(double, lora_dropout, 0.0, "LoRA: dropout on the input of the B A branch (training only)")   \
  X(std::string, target_modules, "q,v",                                                          \
    "LoRA / (IA)3: linear layers by name (q,k,v,o,wi,wi_0,wi_1,wo), in every block of both "     \
    "stacks")

struct PeftOptions {
  COMPACTER_OPTIONS_BODY(COMPACTER_PEFT_OPTIONS)
};

// What a tensor a method adds counts as in the parameter report (ParameterBreakdown, spec §7.1).
// kNone: not one of the method's tensors (a T5 tensor).
enum class TensorCategory {
  kNone,
  kAdapter,      // adapter modules: adapters, LoRA factors, (IA)3 vectors
  kAdapterBias,  // the bias of an adapter's projection (counted in adapters too)
  kSharedRule,   // Compacter's shared A
  kBias,         // BitFit biases
  kPrompt,       // prompt tuning
  kIntrinsic,    // Intrinsic-SAID theta_d and lambda
};

// What attach() reports.
struct Attachment {
  std::string method;
  int64_t adapters = 0;       // adapter-family hooks installed
  int64_t bottleneck = 0;     // adapter family: d
  torch::Tensor shared_rule;  // the model-level A ("phm_rule"), when shared
};

// One method: everything the rest of the library and the CLI know about it.
struct MethodInfo {
  const char* name = "";
  const char* summary = "";
  // The method's paper (or PEFT) settings, applied on top of the generic option defaults.
  std::function<void(PeftOptions&)> defaults = [](PeftOptions&) {};
  // The options it reads (COMPACTER_PEFT_OPTIONS names, in declaration order).
  std::vector<std::string> settings;
  // Attaches the method and sets requires_grad to exactly its trainable set. New tensors take
  // the dtype and device of the model's embedding; `seed` drives every random init. Throws Error
  // for bad options.
  std::function<Attachment(const PeftOptions&, nn::T5ModelImpl&, uint64_t seed)> attach;
  // The category of one of its tensors, by its name in named_parameters(); kNone for T5's own.
  std::function<TensorCategory(const std::string& name)> category = [](const std::string&) {
    return TensorCategory::kNone;
  };
  // Whether inputs carry the task-name prefix (spec §4.2; with --fix-quirks every method's do).
  bool task_prefix = false;
  // Whether its trained weights replace T5's (full, said): backward then needs the gradients
  // of every backbone weight (the bench FLOP rule), and a server cannot share the base weights.
  bool rewrites_backbone = false;
  // Folds the method of `adapted` into `plain`, a plain T5 holding a copy of adapted's T5
  // tensors; empty when the method cannot be expressed as T5 weights.
  std::function<void(nn::T5ModelImpl& adapted, nn::T5ModelImpl& plain)> merge;
  // Positions the method adds in front of the encoder input (prompt tuning: prompt_length).
  std::function<int64_t(const PeftOptions&)> encoder_positions = [](const PeftOptions&) {
    return int64_t{0};
  };
};

// The registry: every method, one line each, in the order `methods` and `params --all` print.
const std::vector<MethodInfo>& all_methods();
// Throws Error listing the known names for an unknown method.
const MethodInfo& find_method(const std::string& name);
// The generic defaults with the method's paper settings applied.
PeftOptions method_defaults(const std::string& method);
// The method's settings (MethodInfo::settings) with their values in `options`, as JSON values.
std::vector<std::pair<std::string, nlohmann::json>> method_settings(const std::string& method,
                                                                    const PeftOptions& options);
// Blocks listed in "0-4" / "0,1,2" / "" form.
std::vector<int64_t> parse_block_list(const std::string& text);
// Names in "q, v" / "q,v" form (spaces ignored, empty entries skipped).
std::vector<std::string> parse_name_list(const std::string& text);

// Attaches the method (MethodInfo::attach): e.g. the adapter family installs output hooks named
// "adapter" (never after cross-attention), freezes the backbone except the T5 layer-norm scales
// (and lm_head when asked) and registers a shared A once on the model as "phm_rule"; bitfit adds
// zero biases (bitfit.h); prompt-r/-t "encoder.prompt.weight" (prompt.h); said "said.theta_d" and
// "said.lambda" (said.h); lora "<linear>.lora_A.weight" / "lora_B.weight" (lora.h); ia3
// "<linear>.ia3_l" (ia3.h).
Attachment attach(const std::string& method, const PeftOptions& options, nn::T5ModelImpl& model,
                  uint64_t seed);

// Helpers for methods: freeze every tensor of the model; open the T5 layer-norm scales when
// options.train_layer_norms and the output layer's matrix when options.train_lm_head.
void freeze_all(nn::T5ModelImpl& model);
void open_norms_and_head(nn::T5ModelImpl& model, const PeftOptions& options);

// A plain T5 (nothing attached, a copy of `model`'s T5 tensors) with `method`, attached to
// `model`, folded into its weights: its outputs equal `model`'s up to rounding. `model` is left
// as it was. Throws Error naming the method when it cannot be merged (MethodInfo::merge empty).
nn::T5Model merge_into_base(nn::T5ModelImpl& model, const std::string& method);
// Throws that Error unless `method` can be merged.
void check_mergeable(const std::string& method);

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
  int64_t adapters = 0;           // adapter modules (projections, biases, own A, norms; LoRA; IA3)
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
// Tensors in the T5 name table (io/hf_names.h) are the backbone; every other tensor must be one
// of `method`'s (MethodInfo::category), or this throws.
ParameterBreakdown parameter_breakdown(nn::T5ModelImpl& model, const std::string& method);
// The same, for the method whose categories cover every tensor that is not T5's.
ParameterBreakdown parameter_breakdown(nn::T5ModelImpl& model);

}  // namespace compacter::peft

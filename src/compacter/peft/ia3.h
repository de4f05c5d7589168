// (IA)^3 (Liu et al., 2022) as Hugging Face PEFT implements it for T5 (peft/tuners/ia3/layer.py,
// Linear; TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING["t5"] = k, v, wo with
// ..._FEEDFORWARD_MODULES_MAPPING["t5"] = wo): learned vectors "<linear>.ia3_l", initialised to
// ones, that scale
//   k, v  the layer's output (ia3_l [out, 1]), through the attention's key / value scale point,
//         in every attention of both stacks (self- and cross-attention);
//   wo    the layer's input (ia3_l [1, d_ff]: a feed-forward module in PEFT's terms), which is the
//         feed-forward hidden activation (the scale point T5DenseImpl::hidden_scale);
//   wi_1  (gated feed-forward; PEFT's choice for mt5) the layer's output (ia3_l [d_ff, 1]), the
//         same activation, as act(wi_0 x) * (wi_1 x) scales alike; not together with wo.
// target_modules picks among them. Only the vectors train (and the T5 norms / lm_head when
// asked). Merging multiplies W by ia3_l (rows for k, v, wi_1; columns for wo). Counts for t5-base:
// 36 attentions x 2 x 768 + 24 x 3,072 = 129,024.
#pragma once
#include "compacter/peft/methods.h"

namespace compacter::peft {

MethodInfo ia3_method();

}  // namespace compacter::peft

// The adapter family (spec §2, §3.2-§3.9): adapter, pfeiffer, adapterdrop, lowrank, phm,
// compacter and compacter++. Each installs adapters (adapters.h) as output hooks named "adapter"
// on sublayers (never after cross-attention, spec §0.1), freezes the backbone except the T5
// layer-norm scales (and lm_head when asked) and, for a shared A, registers it once on the model
// as "phm_rule". Placements and counts: docs/methods.md.
#pragma once
#include "compacter/peft/methods.h"

namespace compacter::peft {

MethodInfo adapter_method();       // dense, after self-attention and feed-forward (48)
MethodInfo pfeiffer_method();      // dense, after self-attention only (24)
MethodInfo adapterdrop_method();   // dense, none in the blocks of adapterdrop_layers (28)
MethodInfo lowrank_method();       // rank-r W = W_left W_right (48)
MethodInfo phm_method();           // PHM layers, own A, full B, n = 12 (48)
MethodInfo compacter_method();     // LPHM layers, shared A, rank-1 B (48)
MethodInfo compacter_pp_method();  // compacter++: Compacter after the feed-forward only (24)

}  // namespace compacter::peft

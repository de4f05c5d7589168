// Full fine-tuning (spec §3.13): every T5 tensor is trained; nothing is added. Its adapter
// directory holds the whole model, so it merges into a plain checkpoint trivially.
#pragma once
#include "compacter/peft/methods.h"

namespace compacter::peft {

MethodInfo full_method();

}  // namespace compacter::peft

// The paper's Table 1 as `compacter params` reports it (spec §7): for a method on a T5 shape, the
// trainable count, its percentage of the backbone, "#Total params" for T tasks, and the split into
// adapters, shared A, layer norms, biases, prompts and SAID values. Needs no weights: counting
// never reads the model's values.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "compacter/io/t5_config.h"
#include "compacter/peft/methods.h"

namespace compacter::peft {

// The row of `method` with `options` on a T5 of `config` ({"method", "trainable", "percent",
// "backbone", "tasks", "total_params", "added", "adapters", ...}). Throws Error when the options
// do not fit the shape.
nlohmann::json parameter_row(const T5Config& config, const std::string& method,
                             const PeftOptions& options, int64_t tasks);

// The rows (each a parameter_row, or {"method", "error"}) as a table, with a header line naming
// the shape.
std::string format_parameter_table(const std::string& model_config, const T5Config& config,
                                   const nlohmann::json& rows, int64_t tasks);

// Every method's name, summary and settings (the options it reads) with their default values.
nlohmann::json methods_json();

}  // namespace compacter::peft

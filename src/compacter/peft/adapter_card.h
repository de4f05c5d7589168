// The README.md card of an adapter directory, for the people who find the folder: what it is
// (method, task, how inputs are written), which base model it needs, how many parameters it
// trains, how it scored and the command that made it, and how to use it. Written from the
// adapter's own adapter_config.json, so it never disagrees with what is loaded.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace compacter::peft {

constexpr const char* kAdapterCardFile = "README.md";

// The card's Markdown. `scores`: {"validation": {metric: value}, "test": {...}} or null.
std::string adapter_card(const nlohmann::json& adapter_config, int64_t parameters,
                         const nlohmann::json& scores);

// Writes dir/README.md atomically.
void write_adapter_card(const std::string& dir, const nlohmann::json& adapter_config,
                        int64_t parameters, const nlohmann::json& scores);

// Rewrites the card of the adapter in `dir` with its scores (the parameter count is read from
// its tensor file).
void update_adapter_card_scores(const std::string& dir, const nlohmann::json& scores);

}  // namespace compacter::peft

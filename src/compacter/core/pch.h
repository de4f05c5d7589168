// Precompiled header: the heavy third-party headers every torch-using file includes.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>

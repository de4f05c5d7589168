// Fuzz target for the `adapters` library's (AdapterHub's) adapter_config.json as `compacter
// import --from adapterhub` reads it (interop/import_config.h,
// adapterhub_import_config_from_text): the BnConfig under "config" (placement, residuals,
// gating, PHM settings, reduction_factor, non_linearity, layer norms) and the top-level
// model_type, name, model_name and hidden_size, parsed into the settings the importer then
// applies to the tensors and the base model. Torch-free.
// Beyond "accepted or compacter::Error": the method is one of the five bottleneck methods with
// the placement it implies; reduction_factor, phm_dim and phm_rank lie in 1..their bound;
// hidden_size is null or an integer; non_linearity is lower case.
#include <cctype>
#include <string>

#include "compacter/core/error.h"
#include "compacter/interop/import_config.h"
#include "fuzz_target.h"

namespace {

using namespace compacter;

void check_invariants(const interop::AdapterHubImportConfig& c) {
  const bool phm_method = c.method == "phm" || c.method == "compacter" || c.method == "compacter++";
  if (!phm_method && c.method != "adapter" && c.method != "pfeiffer") __builtin_trap();
  if (c.phm != phm_method) __builtin_trap();
  if (c.reduction_factor < 1 || c.reduction_factor > interop::kMaxHubReductionFactor)
    __builtin_trap();
  if (c.phm_dim < 1 || c.phm_dim > interop::kMaxHubPhmDim || c.phm_rank < 1 ||
      c.phm_rank > interop::kMaxHubPhmDim)
    __builtin_trap();
  if (c.phm && (c.shared_phm_rule != (c.method != "phm") || c.factorized_phm != c.shared_phm_rule))
    __builtin_trap();
  if (!c.hidden_size.is_null() && !c.hidden_size.is_number_integer()) __builtin_trap();
  for (char ch : c.non_linearity)
    if (std::isupper(static_cast<unsigned char>(ch))) __builtin_trap();
}

}  // namespace

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  return compacter_fuzz_accepted_unless_error([&] {
    const std::string text(reinterpret_cast<const char*>(data), size);
    check_invariants(interop::adapterhub_import_config_from_text(text, "hub/adapter_config.json"));
  });
}

COMPACTER_FUZZ_ENTRY_POINT

// The `adapters` library's (AdapterHub's) bottleneck adapter folders, out (`compacter export --to
// adapterhub`) and in (`compacter import --from adapterhub`), for adapter, pfeiffer, phm,
// compacter and compacter++. Read from adapter-hub/adapters (configuration/adapter_config.py
// BnConfig and its presets, methods/modeling.py Adapter and PHMLayer, methods/bottleneck.py,
// models/t5/modeling_t5.py, loading.py):
//   adapter_config.json  {"config": {every BnConfig field, "architecture": null}, "name",
//                         "model_type": "t5", "model_class": "T5AdapterModel", "model_name",
//                         "hidden_size": d_model, "version": "adapters.1.2.0"}
//   adapter.safetensors  the tensors under the names T5AdapterModel's state dict gives them:
//     transformer.{encoder,decoder}.block.B.layer.L.adapters.NAME.adapter_down.0.P  (down)
//     transformer.{encoder,decoder}.block.B.layer.L.adapters.NAME.adapter_up.P      (up)
//     ...adapters.NAME.adapter_norm_after.{weight,bias}                               (ln_after)
//     ...adapters.NAME.adapter_norm_before.{weight,bias}, also as adapter_down.0.*, the down
//        projection then being adapter_down.1.P                                      (ln_before)
//     transformer.shared_parameters.NAME.phm_rule                                    (shared A)
//   with P = weight, bias (nn.Linear) or W / W_left, W_right, b, phm_rule (PHMLayer: the same
//   shapes and H = sum_i kron(A_i, B_i), y = x H + b as ours). AdapterHub reads this file with
//   model.load_adapter(DIR, use_safetensors=True); pytorch_adapter.bin is read here too.
//   t5_trained_weights.safetensors  (ours only, documented extra) T5's own tensors the adapter
//                         trains (layer norms; the output layer with train_lm_head) under
//                         Hugging Face's names; AdapterHub ignores it: load it into the T5 with
//                         load_state_dict(..., strict=False) to get our outputs.
// Placement. AdapterHub's T5 layers compute x + h + A(z) with h the sublayer's (dropped-out)
// output; its presets differ in z: DoubleSeqBn / CompacterConfig (original_ln_before = false)
// feed z = h, the paper's and our placement; SeqBn ("pfeiffer") and CompacterPlusPlusConfig
// (original_ln_before = true) feed z = x + h. So our adapters are written as BnConfig dicts with
// original_ln_before = false and mh_adapter / output_adapter set to our sites (pfeiffer: after
// self-attention, as the reference code; compacter++: after the feed-forward); adapters with
// original_ln_before = true, a parallel or gated or scaled adapter, leave_out, invertible or
// cross-attention adapters, shared W, a factorised rule, no PHM bias, or a per-layer reduction
// factor are refused on import. lowrank and adapterdrop have no AdapterHub form.
#pragma once
#include <string>

#include "compacter/interop/source.h"

namespace compacter::interop {

constexpr const char* kAdapterHubWeights = "adapter.safetensors";
constexpr const char* kAdapterHubExtra = "t5_trained_weights.safetensors";
constexpr const char* kAdapterHubVersion = "adapters.1.2.0";

struct AdapterHubExportOptions {
  std::string source;  // an adapter folder or a run (source.h)
  std::string name;    // the adapter's name in AdapterHub ("" : the task's, else the method's)
  std::string model;   // written as model_name ("" : the adapter's recorded base name)
  std::string out;
  bool overwrite = false;
};

InteropReport export_adapterhub(const AdapterHubExportOptions& options);

InteropReport import_adapterhub(const ImportOptions& options);

}  // namespace compacter::interop

// Mixed-adapter batches (issue #11): one model that shares the base's tensors and gives each
// row of a batch its own adapter, so requests for different adapters decode in one forward pass
// with the base's matrix products run once for the whole batch. Per row, through nn/rows.h:
//   - the layer-norm scales (and BitFit's norm biases), linear and output-layer biases (BitFit)
//     and the scale points ((IA)^3) become row tables (one value per adapter of the batch);
//   - a sublayer's output hook (the adapter family), a linear layer's hook (LoRA) and the
//     encoder's input hook (prompt tuning) become dispatchers that run each adapter's own hook
//     on its rows (index_select, then index_copy back); rows whose adapter has none at that
//     point pass unchanged. Input hooks may lengthen rows differently: shorter rows are padded
//     in front with masked positions (T5's attention has no absolute positions, so a masked
//     prefix changes nothing: its keys get zero weight and the relative distances of the real
//     positions stay as they were).
// Methods that rewrite base weights (full, SAID, a retrained output layer) cannot share the
// base's matrix products: mixed_batch_refusal says why, and such adapters keep a batch of
// their own.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "compacter/nn/rows.h"
#include "compacter/nn/t5.h"

namespace compacter::serve {

// "" when `adapted` (a model made by nn::share_weights from `base` with `method` attached and
// loaded) can take part in mixed batches; otherwise why not (one sentence).
std::string mixed_batch_refusal(nn::T5ModelImpl& base, nn::T5ModelImpl& adapted,
                                const std::string& method);

class MixedBatchModel {
 public:
  // A model sharing `base`'s tensors, and its int8 layers where `base` is quantised.
  explicit MixedBatchModel(nn::T5ModelImpl& base);
  // Sets up the variants a batch's rows use: variant v is variants[v], the base itself or a
  // model that mixed_batch_refusal accepted (all sharing the base's tensors). Cheap when the
  // list is the one set last.
  void set_variants(const std::vector<nn::T5ModelImpl*>& variants);
  // The variant of each row of the next batch (indices into set_variants' list).
  void set_rows(std::vector<int64_t> variant_of_row);
  nn::T5ModelImpl& model() { return *model_; }

 private:
  nn::T5Model model_{nullptr};
  std::shared_ptr<nn::RowVariants> rows_;
  std::vector<nn::T5ModelImpl*> variants_;
};

}  // namespace compacter::serve

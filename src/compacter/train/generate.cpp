// Greedy decoding through the decoding library (train/decoding/decode.h) with the model's own
// special ids: one decoder position per step, reusing cached keys and values.
#include "compacter/train/generate.h"

#include <torch/torch.h>

#include "compacter/core/error.h"
#include "compacter/train/decoding/decode.h"

namespace compacter {

torch::Tensor greedy_generate(nn::T5ModelImpl& model, const torch::Tensor& input_ids,
                              const torch::Tensor& attention_mask, const GenerateOptions& options) {
  check(input_ids.dim() == 2, "input_ids must be [batch, length]");
  check(options.max_new_tokens >= 0, "max_new_tokens must be >= 0");
  if (options.max_new_tokens == 0)  // nothing to generate (transformers refuses 0)
    return torch::zeros({input_ids.size(0), 0}, input_ids.options().dtype(torch::kLong));
  decoding::GenerationConfig config = decoding::from_model_config(model.config());
  config.max_new_tokens = options.max_new_tokens;
  decoding::DecodeOptions d;
  d.stop_when_all_finished = options.stop_when_all_finished;
  d.on_step = options.on_step;
  const auto sequences = decoding::generate(model, input_ids, attention_mask, config, d);
  return decoding::padded_tokens(sequences, model.config().pad_token_id,
                                 options.stop_when_all_finished ? 0 : options.max_new_tokens)
      .to(input_ids.device());
}

}  // namespace compacter

// generate(): the choice of the decoding loop, as transformers' generation mode
// (GenerationMixin._get_generation_mode: num_beams 1 -> greedy or sampling, else beam search).
#include "compacter/train/decoding/decode.h"

#include <torch/torch.h>

#include "compacter/core/error.h"
#include "compacter/train/decoding/decoder_state.h"

namespace compacter::decoding {

std::vector<std::vector<Sequence>> generate(nn::T5ModelImpl& model, const torch::Tensor& input_ids,
                                            const torch::Tensor& attention_mask,
                                            const GenerationConfig& config_in,
                                            const DecodeOptions& options) {
  check(input_ids.dim() == 2, "input_ids must be [batch, length]");
  const GenerationConfig config = config_in.resolved(model.config());
  config.validate("decoding", true);
  const int64_t vocab = model.config().vocab_size;
  for (auto [name, id] : {std::pair<const char*, int64_t>{"eos_token_id", config.eos_token_id},
                          {"pad_token_id", config.pad_token_id},
                          {"decoder_start_token_id", config.decoder_start_token_id}})
    check_usage(id < vocab, "generation option \"", name, "\" (", id,
                ") is beyond the model's vocabulary (", vocab, " rows)");
  InferenceMode mode(model);
  if (config.num_beams > 1) return beam_search(model, input_ids, attention_mask, config, options);
  return sample_or_greedy(model, input_ids, attention_mask, config, options);
}

int64_t output_padding_id(const GenerationConfig& config) {
  if (config.is_beam_search() && config.pad_token_id == 0) return config.eos_token_id;
  return config.pad_token_id;
}

torch::Tensor padded_tokens(const std::vector<std::vector<Sequence>>& sequences, int64_t pad,
                            int64_t min_width) {
  int64_t rows = 0, width = min_width;
  for (const auto& input : sequences)
    for (const Sequence& s : input) {
      ++rows;
      width = std::max<int64_t>(width, static_cast<int64_t>(s.tokens.size()));
    }
  torch::Tensor out = torch::full({rows, width}, pad, torch::kLong);
  int64_t r = 0;
  for (const auto& input : sequences)
    for (const Sequence& s : input) {
      int64_t* p = out[r++].data_ptr<int64_t>();
      std::copy(s.tokens.begin(), s.tokens.end(), p);
    }
  return out;
}

}  // namespace compacter::decoding

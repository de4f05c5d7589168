// Greedy decoding: one decoder position per step, reusing cached keys and values.
#include "compacter/train/generate.h"

#include <torch/torch.h>

#include "compacter/core/error.h"

namespace compacter {

torch::Tensor greedy_generate(nn::T5ModelImpl& model, const torch::Tensor& input_ids,
                              const torch::Tensor& attention_mask, const GenerateOptions& options) {
  check(input_ids.dim() == 2, "input_ids must be [batch, length]");
  check(options.max_new_tokens >= 0, "max_new_tokens must be >= 0");
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const auto& cfg = model.config();
  const int64_t batch = input_ids.size(0);
  if (model.before_forward) model.before_forward();
  auto [enc, enc_mask] = model.encoder->encode(input_ids, attention_mask);
  nn::DecoderCache cache;
  torch::Tensor next = torch::full({batch, 1}, cfg.decoder_start_token_id, input_ids.options());
  torch::Tensor finished = torch::zeros({batch}, input_ids.options().dtype(torch::kBool));
  std::vector<torch::Tensor> steps;
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    torch::Tensor h = model.decoder->decode(next, enc, enc_mask, &cache);
    torch::Tensor token = model.lm_head->forward(h.select(1, -1)).argmax(-1);
    token = token.masked_fill(finished, cfg.pad_token_id);
    steps.push_back(token);
    finished = finished | (token == cfg.eos_token_id);
    if (options.on_step) options.on_step(step, token);
    if (options.stop_when_all_finished && finished.all().item<bool>()) break;
    next = token.unsqueeze(1);
  }
  if (was_training) model.train();
  if (steps.empty()) return torch::empty({batch, 0}, input_ids.options());
  return torch::stack(steps, 1);
}

}  // namespace compacter

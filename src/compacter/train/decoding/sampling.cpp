// Greedy search and multinomial sampling (transformers 4.3x GenerationMixin.greedy_search and
// sample): per step the logits processors on the raw logits, then for sampling the warpers,
// softmax and one draw (torch.multinomial) per row; greedy takes the argmax. A row that
// produced </s> ends; transformers pads it from there on, here it leaves the batch (its cache,
// encoder states and mask rows are dropped), which changes no other row. num_return_sequences
// samples of an input are rows of their own that share its encoder pass.
//
// The draws use one CPU generator seeded with config.seed, whatever the model's device, so a
// seed gives the same samples on the CPU and on CUDA (up to the probabilities' rounding).
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "compacter/core/error.h"
#include "compacter/nn/cross_entropy.h"
#include "compacter/train/decoding/decode.h"
#include "compacter/train/decoding/decoder_state.h"
#include "compacter/train/decoding/logits_processors.h"

namespace compacter::decoding {

std::vector<std::vector<Sequence>> sample_or_greedy(nn::T5ModelImpl& model,
                                                    const torch::Tensor& input_ids,
                                                    const torch::Tensor& attention_mask,
                                                    const GenerationConfig& c,
                                                    const DecodeOptions& options) {
  const int64_t inputs = input_ids.size(0);
  const int64_t per_input = c.do_sample ? c.num_return_sequences : 1;
  const int64_t total_rows = inputs * per_input;
  const int64_t limit = c.new_token_limit();
  const bool fixed_work = !options.stop_when_all_finished;
  std::vector<Sequence> out(static_cast<size_t>(total_rows));
  if (limit > 0 && total_rows > 0) {
    DecoderState state(model, input_ids, attention_mask, per_input);
    const LogitsProcessors processors(c);
    at::Generator generator = at::detail::createCPUGenerator(c.seed);
    std::vector<int64_t> active(static_cast<size_t>(total_rows));  // original row of each row
    for (int64_t r = 0; r < total_rows; ++r) active[r] = r;
    std::vector<History> histories(active.size(), History{c.decoder_start_token_id});
    std::vector<bool> ended(active.size(), false);  // fixed work only: rows kept after </s>
    torch::Tensor next = torch::full({total_rows}, c.decoder_start_token_id, torch::kLong);
    for (int64_t step = 0; step < limit; ++step) {
      torch::Tensor scores = processors.process(histories, state.step(next));
      torch::Tensor chosen;
      if (c.do_sample) {
        scores = processors.warp(scores);
        torch::Tensor probs = torch::softmax(scores, -1).to(torch::kCPU);
        chosen = torch::multinomial(probs, 1, /*replacement=*/false, generator).squeeze(1);
      } else {
        chosen = scores.argmax(-1);
      }
      chosen = chosen.to(torch::kCPU).contiguous();
      // The chosen tokens' log-probabilities, without the [rows, vocabulary] log_softmax.
      torch::Tensor logprobs = nn::log_softmax_at(scores, chosen).to(torch::kCPU, torch::kDouble);
      const int64_t* tok = chosen.data_ptr<int64_t>();
      const double* lp = logprobs.data_ptr<double>();
      std::vector<int64_t> keep;  // positions still running after this step
      std::vector<int64_t> fed(active.size());
      for (size_t i = 0; i < active.size(); ++i) {
        int64_t t = tok[i];
        if (ended[i]) {
          t = c.pad_token_id;  // transformers' padding of ended rows
        } else {
          Sequence& s = out[active[i]];
          s.tokens.push_back(t);
          s.token_logprobs.push_back(lp[i]);
          s.logprob_sum += lp[i];
          if (t == c.eos_token_id) s.finished = true;
        }
        fed[i] = t;
        histories[i].push_back(t);
        if (t == c.eos_token_id) ended[i] = true;
        if (!ended[i] || fixed_work) keep.push_back(static_cast<int64_t>(i));
      }
      if (options.on_step) {
        torch::Tensor all = torch::full({total_rows}, c.pad_token_id, torch::kLong);
        for (size_t i = 0; i < active.size(); ++i)
          if (!out[active[i]].tokens.empty() &&
              static_cast<int64_t>(out[active[i]].tokens.size()) == step + 1)
            all[active[i]] = fed[i];
        options.on_step(step, all);
      }
      if (keep.empty()) break;
      if (keep.size() < active.size()) {  // drop the rows that ended
        std::vector<int64_t> new_active;
        std::vector<History> new_histories;
        std::vector<bool> new_ended;
        std::vector<int64_t> new_fed;
        for (int64_t k : keep) {
          new_active.push_back(active[k]);
          new_histories.push_back(std::move(histories[k]));
          new_ended.push_back(ended[k]);
          new_fed.push_back(fed[k]);
        }
        state.keep_rows(torch::tensor(keep, torch::kLong));
        active = std::move(new_active);
        histories = std::move(new_histories);
        ended = std::move(new_ended);
        fed = std::move(new_fed);
      }
      next = torch::tensor(fed, torch::kLong);
    }
  }
  for (Sequence& s : out) s.score = s.logprob_sum;
  std::vector<std::vector<Sequence>> grouped(static_cast<size_t>(inputs));
  for (int64_t r = 0; r < total_rows; ++r)
    grouped[r / per_input].push_back(std::move(out[static_cast<size_t>(r)]));
  return grouped;
}

}  // namespace compacter::decoding

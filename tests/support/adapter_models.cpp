// The serving tests' model, adapters and reference decoding (see adapter_models.h).
#include "support/adapter_models.h"

#include <torch/torch.h>

#include "compacter/data/tokenizer.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/peft/adapter_file.h"

namespace compacter::testing {

CommandResult AdapterModels::write(uint64_t seed, const std::vector<std::string>& methods,
                                   double noise) {
  CommandResult r = init_tiny_t5_with_t5_vocabulary(model_dir());
  if (r.exit_code != 0) return r;
  torch::manual_seed(seed);
  for (const std::string& method : methods)
    write_moved_adapter(model_dir(), method, adapter_dir(method), noise);
  return r;
}

std::string AdapterModels::tokenizer() {
  return shared_path("data/t5-tokenizer/spiece.model");
}

decoding::GenerationConfig t5_generation(int64_t max_new_tokens) {
  decoding::GenerationConfig c;
  c.eos_token_id = 1;
  c.pad_token_id = 0;
  c.decoder_start_token_id = 0;
  c.max_new_tokens = max_new_tokens;
  return c;
}

nn::T5Model load_with_adapter(const std::string& model_dir, const std::string& adapter_dir) {
  torch::NoGradGuard no_grad;
  nn::T5Model model = nn::load_t5(model_dir).model;
  model->resize_vocab(32100);
  if (!adapter_dir.empty()) peft::load_adapter(*model, adapter_dir);
  model->eval();
  return model;
}

std::vector<decoding::Sequence> decode_alone(nn::T5ModelImpl& model, const T5Tokenizer& tokenizer,
                                             const std::string& text,
                                             const decoding::GenerationConfig& settings) {
  torch::NoGradGuard no_grad;
  const std::vector<int64_t> ids = tokenizer.encode(text, 512);
  const torch::Tensor input = torch::tensor(ids, torch::kLong).unsqueeze(0);
  return decoding::generate(model, input, torch::ones_like(input), settings)[0];
}

}  // namespace compacter::testing

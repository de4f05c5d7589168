// Generation-based evaluation (spec §5.1, §6.4): greedy decoding of tokenised sources in batches
// (sorted by length so padding stays small, results in input order), decoding to text, and the
// task's metrics over the predictions.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "compacter/data/tokenizer.h"
#include "compacter/nn/t5.h"

namespace compacter::train {

// max_length counts the decoder start token, as Hugging Face's generate() does (the paper's
// effective 20 gives 19 new tokens).
std::vector<std::string> generate_texts(nn::T5ModelImpl& model, const T5Tokenizer& tokenizer,
                                        const std::vector<std::vector<int64_t>>& sources,
                                        int64_t batch_size, int64_t max_length);

}  // namespace compacter::train

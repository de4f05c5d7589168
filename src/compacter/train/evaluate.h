// Generation-based evaluation (spec §5.1, §6.4): decoding of tokenised sources in batches
// (sorted by length so padding stays small, results in input order), decoding to text, and the
// task's metrics over the predictions. Greedy by default; any decoding of the decoding library
// (train/decoding/decode.h) through a GenerationConfig.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compacter/data/tokenizer.h"
#include "compacter/nn/t5.h"
#include "compacter/train/decoding/decode.h"
#include "compacter/train/decoding/label_scores.h"

namespace compacter::train {

// Called after each batch with the number of sources done and their total; it may throw (e.g.
// Interrupted) to stop.
using BatchDone = std::function<void(size_t done, size_t total)>;
// Called before each batch with the source index of each of its rows (e.g. to give the rows
// their variants: nn/rows.h).
using BatchStart = std::function<void(const std::vector<size_t>& positions)>;

// One generated sequence as text, with its scores (decoding::Sequence).
struct GeneratedText {
  std::string text;
  decoding::Sequence sequence;
};

// Called after each decoding step; it may throw to stop (e.g. when every client of the batch
// went away).
using StepDone = std::function<void()>;

// Every source's num_return_sequences sequences (best first for beam search), decoded with
// `config` (its ids resolved from the model). autocast: bf16 autocast of the passes
// (nn/autocast.h).
std::vector<std::vector<GeneratedText>> generate_sequences(
    nn::T5ModelImpl& model, const T5Tokenizer& tokenizer,
    const std::vector<std::vector<int64_t>>& sources, int64_t batch_size,
    const decoding::GenerationConfig& config, bool autocast = false, const BatchDone& on_batch = {},
    const BatchStart& on_batch_start = {}, const StepDone& on_step = {});

// The first sequence's text per source.
std::vector<std::string> generate_texts(nn::T5ModelImpl& model, const T5Tokenizer& tokenizer,
                                        const std::vector<std::vector<int64_t>>& sources,
                                        int64_t batch_size,
                                        const decoding::GenerationConfig& config,
                                        bool autocast = false, const BatchDone& on_batch = {});

// Constrained decoding to `labels` (texts; decoding/label_scores.h): each source's distribution
// over them, in the same batches as generation.
std::vector<decoding::LabelDistribution> classify_sources(
    nn::T5ModelImpl& model, const T5Tokenizer& tokenizer,
    const std::vector<std::vector<int64_t>>& sources, int64_t batch_size,
    const std::vector<std::string>& labels, bool autocast = false, const BatchDone& on_batch = {});

// Greedy search with the model config's ids, up to max_new_tokens tokens per source (Hugging
// Face's max_length counts the decoder start token as well: the paper's effective max_length
// 20 is 19 new tokens).
std::vector<std::string> generate_texts(nn::T5ModelImpl& model, const T5Tokenizer& tokenizer,
                                        const std::vector<std::vector<int64_t>>& sources,
                                        int64_t batch_size, int64_t max_new_tokens,
                                        bool autocast = false, const BatchDone& on_batch = {});

}  // namespace compacter::train

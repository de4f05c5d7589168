// Pretraining examples from plain-text files (issue #6): every non-empty line is one document,
// tokenised without </s>; the documents are packed by pack_token_stream into chunks whose
// corrupted input has exactly `input_length` ids (expanded_lengths), and each chunk is corrupted
// `rounds` times, round r drawing from std::mt19937_64(seed + r). A caller that trains one pass
// over all rounds thus sees a fresh corruption of every chunk in each round, as T5's (and
// run_t5_mlm_flax.py's) dynamic masking gives a fresh one in each epoch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "compacter/data/tokenizer.h"
#include "compacter/pretrain/span_corruption.h"
#include "compacter/tasks/tasks.h"

namespace compacter::pretrain {

struct CorpusStats {
  int64_t documents = 0;  // non-empty lines
  int64_t tokens = 0;     // ids of all documents, one </s> each included
  int64_t chunks = 0;     // packed chunks (the incomplete tail dropped)
  ExpandedLengths lengths;
};

// Reads, tokenises and packs the lines of `files`. Throws Error naming a file that cannot be
// read, and when the corpus yields no complete chunk (too little text for input_length).
std::vector<std::vector<int64_t>> pack_text_files(const std::vector<std::string>& files,
                                                  const T5Tokenizer& tokenizer,
                                                  int64_t input_length, double noise_density,
                                                  double mean_noise_span_length,
                                                  CorpusStats& stats);

// Prefix language modelling (Raffel et al. 2020, section 3.3.2; the objective of the "LM
// adaptation" of Lester et al. 2021): the chunk is cut after token s, input = tokens[0, s) </s>,
// target = tokens[s, L) </s>. To keep an example's cost that of a span-corruption example, the
// target keeps u tokens, u uniform in [1, max_target_tokens] (and at most L - 1): s = L - u.
CorruptedExample prefix_lm_example(const std::vector<int64_t>& tokens, int64_t max_target_tokens,
                                   int64_t eos_id, std::mt19937_64& rng);

// `rounds` corruptions of every chunk (round-major order), as source / target ids. Each example
// is a prefix-LM example with probability prefix_lm_fraction (its target at most as long as a
// span-corruption target), else span corruption. Span corruption alone (fraction 0) is T5's
// objective; its decoder always starts by writing <extra_id_0>, so it learns to ignore the input
// at its first position, which a fine-tuning method that keeps the model frozen must then undo.
// Mixing in prefix LM (the demo uses 0.5) makes the first position depend on the input.
std::vector<tasks::EncodedExample> corrupt_chunks(const std::vector<std::vector<int64_t>>& chunks,
                                                  const SpanCorruption& config, int64_t rounds,
                                                  uint64_t seed, double prefix_lm_fraction = 0.0);

}  // namespace compacter::pretrain

// transformers' BeamHypotheses (generation/beam_search.py, 4.36 to 4.4x): the n-best list of
// finished hypotheses of one input, and when beam search may stop for it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace compacter::decoding {

struct Hypothesis {
  std::vector<int64_t> tokens;  // new tokens, </s> included when it ended with one
  std::vector<double> token_logprobs;
  float sum_logprobs = 0.0f;  // the beam's running score (float32, as transformers keeps it)
  double score = 0.0;         // sum_logprobs / generated_len^length_penalty
  bool finished = false;      // ended with </s>
};

class BeamHypotheses {
 public:
  // early_stopping: "true", "false" or "never"; max_length counts the decoder start token.
  BeamHypotheses(int64_t num_beams, double length_penalty, std::string early_stopping,
                 int64_t max_length);

  // BeamHypotheses.add: score = sum_logprobs / generated_len^length_penalty; kept when fewer
  // than num_beams are held or it beats the worst, which is then dropped.
  void add(Hypothesis h, int64_t generated_len);

  // BeamHypotheses.is_done(best_sum_logprobs, cur_len, decoder_prompt_len = 1), cur_len being
  // the decoder input's length after this step's token (start token included).
  bool is_done(double best_sum_logprobs, int64_t cur_len) const;

  size_t size() const { return beams_.size(); }
  // The best n (n <= size()), best first; equal scores: the later added first (transformers
  // sorts stably and pops from the end).
  std::vector<Hypothesis> best(int64_t n) const;

 private:
  int64_t num_beams_;
  double length_penalty_;
  std::string early_stopping_;
  int64_t max_length_;
  std::vector<Hypothesis> beams_;
  double worst_score_ = 1e9;
};

}  // namespace compacter::decoding

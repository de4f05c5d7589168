// The finished hypotheses of one input in transformers' beam search (generation/utils.py
// _beam_search and its helpers _update_finished_beams and _check_early_stop_heuristic, 4.50 to
// 5.x; before them the BeamHypotheses class of beam_search.py): the n-best list, and when beam
// search stops for the input. Scores are float32 divisions, as transformers' tensors compute them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace compacter::decoding {

struct Hypothesis {
  std::vector<int64_t> tokens;  // new tokens, </s> included when it ended with one
  std::vector<double> token_logprobs;
  float sum_logprobs = 0.0f;  // the beam's running score (float32, as transformers keeps it)
  float score = 0.0f;         // sum_logprobs / float(generated_len^length_penalty), in float32
  bool finished = false;      // ended with </s>
};

class BeamHypotheses {
 public:
  // early_stopping: "true", "false" or "never"; max_length counts the decoder start token.
  BeamHypotheses(int64_t num_beams, double length_penalty, std::string early_stopping,
                 int64_t max_length);

  // score = sum_logprobs / generated_len^length_penalty (float32); kept when fewer than
  // num_beams are held or it beats the worst, which is then dropped (transformers keeps the top
  // num_beams of the finished and the new ones).
  void add(Hypothesis h, int64_t generated_len);

  // Whether the input is done (_check_early_stop_heuristic with decoder_prompt_len 1): every
  // num_beams slot is filled and either early_stopping is true, or the best running beam's score
  // (best_running: its float32 running sum after this step) cannot beat the worst finished one:
  //   best_running / L^length_penalty <= worst (float32), with L = max_length - 1 for "never"
  //   and a positive length_penalty, else L = cur_len - 1 (the new tokens so far), cur_len being
  //   the decoder input's length after this step's token (start token included).
  bool is_done(float best_running, int64_t cur_len) const;

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
  float worst_score_ = 1e9f;
};

}  // namespace compacter::decoding

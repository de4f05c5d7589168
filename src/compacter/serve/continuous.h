// Continuous batching (issue #11): greedy and sampled requests (num_beams 1, no labels, an
// adapter that mixed batches take: serve/mixed_batch.h) decode step by step in one
// mixed-adapter batch. At each step boundary waiting requests join as far as the batch limits
// allow (max_batch_rows rows, max_batch_tokens source plus new tokens): their encoder pass and
// first decoder step run together ("prefill"), then their caches join the running rows'; every
// running row gets one token per step, and a row leaves the batch as soon as it ends.
//
// Rows of different lengths share one decoder cache: each row's positions are right-aligned
// and the padding in front of the shorter ones is masked (nn::DecoderCache::key_mask), so the
// relative distance of every key to the new position, and thus T5's position bias, is the
// same for all rows; cross-attention keys are right-padded and masked like any padded input.
// Each input's tokens are chosen from its own rows' logits with its own settings, exactly as
// decoding::sample_or_greedy chooses them for that input decoded alone (the same logits
// processors and warpers; one CPU generator per input seeded with its seed; its samples drawn
// together, as sample_or_greedy draws an input's rows), so a request gets what it gets alone.
// Beam search and label scoring stay with AdapterServer::answer (batched per boundary).
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "compacter/serve/adapter_server.h"

namespace compacter::serve {

// A token as a stream reports it.
struct StreamToken {
  int64_t id = 0;
  std::string text;  // what it adds to the text decoded so far ("" for special tokens)
  double logprob = 0.0;
  bool special = false;
};

// Called on the worker thread with each token of a job's input `input` (its first sequence) as
// soon as it is decoded.
using TokenSink = std::function<void(size_t input, const StreamToken& token)>;

// One submission: its requests, answered together once every one has ended.
struct BatchJob {
  std::vector<Request> requests;
  TokenSink on_token;                              // may be empty
  std::function<void(std::vector<Reply>)> done;    // called once, on the worker thread, or
  std::function<void(std::exception_ptr)> failed;  // when decoding failed
  // Set by another thread when nobody waits for the replies any more (a client that
  // disconnected): the job's rows leave at the next step.
  std::shared_ptr<std::atomic<bool>> cancelled;
  // When the replies are no longer wanted: the job's rows leave at the next step after it, and
  // its inputs not yet answered get a `timeout` error.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

class ContinuousBatch {
 public:
  // `server` outlives the batch; only the worker thread uses either.
  ContinuousBatch(AdapterServer& server, int64_t max_rows, int64_t max_tokens);
  ~ContinuousBatch();
  ContinuousBatch(const ContinuousBatch&) = delete;
  ContinuousBatch& operator=(const ContinuousBatch&) = delete;

  // Whether every request of `requests` decodes here (the others go to AdapterServer::answer).
  bool takes(const std::vector<Request>& requests) const;
  // Queues a job; its rows join at a coming step (requests with an error are answered then).
  void add(BatchJob job);
  // One step: every running row gets a token, ended rows leave, waiting jobs join (prefilled)
  // as far as the limits allow, and ended jobs' `done` is called. Returns the inputs that
  // joined the batch (or were answered without joining).
  int64_t step();
  // After step() threw: every job running or waiting fails with `error` and leaves. Returns
  // the waiting inputs dropped.
  int64_t fail(std::exception_ptr error);
  bool idle() const;             // nothing running or waiting
  int64_t running_rows() const;  // rows decoding now
  int64_t waiting_inputs() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace compacter::serve

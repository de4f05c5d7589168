// One worker thread that owns an AdapterServer (and so the model) and answers what other threads
// submit: a bounded queue of jobs (each a list of requests, e.g. one HTTP request's inputs).
// Jobs whose requests all decode step by step (greedy or sampled, an adapter that mixed batches
// take: serve/continuous.h) join the continuous batch, which runs one decoding step at a time:
// they join at a step boundary and leave when they end, their tokens reported as decoded. The
// other jobs (beam search, labels, adapters that rewrite base weights) are answered at a step
// boundary by one AdapterServer::answer call over all of them (grouped by adapter and settings,
// decoded in batches; the running rows wait meanwhile). Administrative tasks (loading or
// unloading an adapter) run on the worker at a step boundary too, so traffic for other adapters
// goes on. A job is refused (not queued) when the inputs waiting would exceed the queue's
// capacity; stop() refuses new jobs, answers those queued and joins the worker.
// No HTTP here: the program's server (tools/compacter/http_serve.cpp) sits on top.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "compacter/serve/adapter_server.h"
#include "compacter/serve/continuous.h"

namespace compacter::serve {

class Scheduler {
 public:
  // What the worker did in one batch or step: the inputs it decoded together (rows of the
  // continuous batch), and how long it took (seconds). Called on the worker thread.
  using BatchObserver = std::function<void(size_t jobs, size_t inputs, double seconds)>;

  // `server` must outlive the scheduler and is used only by its worker from now on. The
  // continuous batch holds at most max_batch_rows rows and max_batch_tokens source plus new
  // tokens (server.options().limits); continuous = false answers every job with answer().
  Scheduler(AdapterServer& server, int64_t max_queued_inputs, BatchObserver on_batch = {},
            bool continuous = true);
  ~Scheduler();  // stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // The replies to `requests`, in their order, once the worker has answered them (an exception
  // from the server's answer reaches the future). None when the queue is full or stopped.
  // on_token: each token as decoded (continuous jobs only); cancelled: set it to drop the job
  // (continuous jobs leave at the next step; others are not started, or stop at the next step
  // when every job decoding with them was dropped too: AdapterServer::answer's `dropped`);
  // deadline: after it, what is not answered yet gets a `timeout` error (continuous jobs stop
  // decoding at the next step; others are not started).
  std::optional<std::future<std::vector<Reply>>> submit(
      std::vector<Request> requests, TokenSink on_token = {},
      std::shared_ptr<std::atomic<bool>> cancelled = {},
      std::chrono::steady_clock::time_point deadline =
          std::chrono::steady_clock::time_point::max());

  // Runs `task` on the worker at the next step boundary (e.g. AdapterServer::add); its
  // exception reaches the future. None when stopped.
  std::optional<std::future<void>> run(std::function<void(AdapterServer&)> task);

  // Refuses new jobs, answers every queued one, joins the worker. Idempotent.
  void stop();

  int64_t queued_inputs() const;  // inputs waiting (not yet decoding)
  int64_t running_rows() const;   // rows of the continuous batch

 private:
  struct Job {
    std::vector<Request> requests;
    std::promise<std::vector<Reply>> done;
    TokenSink on_token;
    std::shared_ptr<std::atomic<bool>> cancelled;
    std::chrono::steady_clock::time_point deadline;
  };
  struct Task {
    std::function<void(AdapterServer&)> task;
    std::promise<void> done;
  };
  void work();

  AdapterServer& server_;
  const int64_t capacity_;
  BatchObserver on_batch_;
  const bool continuous_;
  ContinuousBatch batch_;  // used by the worker only
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  std::deque<Task> tasks_;
  int64_t queued_inputs_ = 0;
  std::atomic<int64_t> running_rows_{0};
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace compacter::serve

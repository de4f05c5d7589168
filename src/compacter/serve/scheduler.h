// One worker thread that owns an AdapterServer (and so the model) and answers what other threads
// submit: a bounded queue of jobs (each a list of requests, e.g. one HTTP request's inputs). At
// each batch boundary the worker takes every job waiting and answers them in one
// AdapterServer::answer call, which groups the requests by adapter and settings and decodes
// each group in batches. A job is refused (not queued) when the inputs waiting would exceed the
// queue's capacity; stop() refuses new jobs, answers those queued and joins the worker.
// No HTTP here: the program's server (tools/compacter/http_serve.cpp) sits on top.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "compacter/serve/adapter_server.h"

namespace compacter::serve {

class Scheduler {
 public:
  // What the worker did in one batch: the jobs and inputs it answered together, and how long it
  // took (seconds). Called on the worker thread.
  using BatchObserver = std::function<void(size_t jobs, size_t inputs, double seconds)>;

  // `server` must outlive the scheduler and is used only by its worker from now on.
  Scheduler(AdapterServer& server, int64_t max_queued_inputs, BatchObserver on_batch = {});
  ~Scheduler();  // stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // The replies to `requests`, in their order, once the worker has answered them (an exception
  // from the server's answer reaches the future). None when the queue is full or stopped.
  std::optional<std::future<std::vector<Reply>>> submit(std::vector<Request> requests);

  // Refuses new jobs, answers every queued one, joins the worker. Idempotent.
  void stop();

  int64_t queued_inputs() const;  // inputs waiting (not yet taken by the worker)

 private:
  struct Job {
    std::vector<Request> requests;
    std::promise<std::vector<Reply>> done;
  };
  void work();

  AdapterServer& server_;
  const int64_t capacity_;
  BatchObserver on_batch_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  int64_t queued_inputs_ = 0;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace compacter::serve

// The server's worker thread and its bounded queue: see scheduler.h.
#include "compacter/serve/scheduler.h"

#include <chrono>

namespace compacter::serve {

Scheduler::Scheduler(AdapterServer& server, int64_t max_queued_inputs, BatchObserver on_batch)
    : server_(server), capacity_(max_queued_inputs), on_batch_(std::move(on_batch)) {
  worker_ = std::thread([this] { work(); });
}

Scheduler::~Scheduler() {
  stop();
}

std::optional<std::future<std::vector<Reply>>> Scheduler::submit(std::vector<Request> requests) {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t n = static_cast<int64_t>(requests.size());
  if (stopping_ || queued_inputs_ + n > capacity_) return std::nullopt;
  queue_.push_back(Job{std::move(requests), {}});
  auto future = queue_.back().done.get_future();
  queued_inputs_ += n;
  wake_.notify_one();
  return future;
}

void Scheduler::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    wake_.notify_one();
  }
  if (worker_.joinable()) worker_.join();
}

int64_t Scheduler::queued_inputs() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queued_inputs_;
}

void Scheduler::work() {
  for (;;) {
    std::deque<Job> jobs;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      jobs.swap(queue_);
      queued_inputs_ = 0;
    }
    // Everything waiting is answered together (the server groups it by adapter and settings).
    std::vector<Request> all;
    for (Job& job : jobs)
      for (Request& r : job.requests) all.push_back(std::move(r));
    const auto start = std::chrono::steady_clock::now();
    try {
      std::vector<Reply> replies = server_.answer(all);
      if (on_batch_)
        on_batch_(jobs.size(), all.size(),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      size_t at = 0;
      for (Job& job : jobs) {
        const size_t n = job.requests.size();
        std::vector<Reply> mine(std::make_move_iterator(replies.begin() + at),
                                std::make_move_iterator(replies.begin() + at + n));
        at += n;
        job.done.set_value(std::move(mine));
      }
    } catch (...) {
      for (Job& job : jobs) job.done.set_exception(std::current_exception());
    }
  }
}

}  // namespace compacter::serve

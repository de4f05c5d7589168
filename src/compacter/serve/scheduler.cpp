// The server's worker thread, its bounded queue and its continuous batch: see scheduler.h.
#include "compacter/serve/scheduler.h"

#include <chrono>

namespace compacter::serve {

Scheduler::Scheduler(AdapterServer& server, int64_t max_queued_inputs, BatchObserver on_batch,
                     bool continuous)
    : server_(server),
      capacity_(max_queued_inputs),
      on_batch_(std::move(on_batch)),
      continuous_(continuous),
      batch_(server, server.options().limits.max_batch_rows,
             server.options().limits.max_batch_tokens) {
  worker_ = std::thread([this] { work(); });
}

Scheduler::~Scheduler() {
  stop();
}

std::optional<std::future<std::vector<Reply>>> Scheduler::submit(
    std::vector<Request> requests, TokenSink on_token, std::shared_ptr<std::atomic<bool>> cancelled,
    std::chrono::steady_clock::time_point deadline) {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t n = static_cast<int64_t>(requests.size());
  if (stopping_ || queued_inputs_ + n > capacity_) return std::nullopt;
  queue_.push_back(
      Job{std::move(requests), {}, std::move(on_token), std::move(cancelled), deadline});
  auto future = queue_.back().done.get_future();
  queued_inputs_ += n;
  wake_.notify_one();
  return future;
}

std::optional<std::future<void>> Scheduler::run(std::function<void(AdapterServer&)> task) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_) return std::nullopt;
  tasks_.push_back(Task{std::move(task), {}});
  auto future = tasks_.back().done.get_future();
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

int64_t Scheduler::running_rows() const {
  return running_rows_;
}

void Scheduler::work() {
  using Clock = std::chrono::steady_clock;
  for (;;) {
    std::deque<Job> jobs;
    std::deque<Task> tasks;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock,
                 [&] { return stopping_ || !queue_.empty() || !tasks_.empty() || !batch_.idle(); });
      if (queue_.empty() && tasks_.empty() && batch_.idle()) return;  // stopping, nothing left
      jobs.swap(queue_);
      tasks.swap(tasks_);
    }
    for (Task& t : tasks) {
      try {
        t.task(server_);
        t.done.set_value();
      } catch (...) {
        t.done.set_exception(std::current_exception());
      }
    }
    // Jobs the continuous batch takes join it; the others are answered together now.
    std::vector<Job*> others;
    int64_t answered_now = 0;
    for (Job& job : jobs) {
      if (continuous_ && batch_.takes(job.requests)) {
        auto promise = std::make_shared<std::promise<std::vector<Reply>>>(std::move(job.done));
        batch_.add(BatchJob{
            std::move(job.requests), std::move(job.on_token),
            [promise](std::vector<Reply> replies) { promise->set_value(std::move(replies)); },
            [promise](std::exception_ptr e) { promise->set_exception(e); },
            std::move(job.cancelled), job.deadline});
      } else if (Clock::now() > job.deadline) {
        // Not started: past its deadline. (A job whose client went away goes on to
        // AdapterServer::answer, which starts none of its requests.)
        std::vector<Reply> replies(job.requests.size());
        for (size_t i = 0; i < replies.size(); ++i) {
          replies[i].id = job.requests[i].id;
          replies[i].adapter = job.requests[i].adapter;
          replies[i].error = kDeadlinePassed;
          replies[i].error_kind = ErrorKind::timeout;
        }
        job.done.set_value(std::move(replies));
        answered_now += static_cast<int64_t>(job.requests.size());
      } else {
        others.push_back(&job);
        answered_now += static_cast<int64_t>(job.requests.size());
      }
    }
    if (answered_now > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      queued_inputs_ -= answered_now;
    }
    if (!others.empty()) {
      std::vector<Request> all;
      std::vector<const std::atomic<bool>*> cancelled_of;  // per input: its job's flag
      for (Job* job : others)
        for (Request& r : job->requests) {
          all.push_back(r);
          cancelled_of.push_back(job->cancelled.get());
        }
      const auto dropped = [&cancelled_of](size_t i) {
        return cancelled_of[i] != nullptr && cancelled_of[i]->load();
      };
      const auto start = Clock::now();
      try {
        std::vector<Reply> replies = server_.answer(all, no_progress(), dropped);
        if (on_batch_)
          on_batch_(others.size(), all.size(),
                    std::chrono::duration<double>(Clock::now() - start).count());
        size_t at = 0;
        for (Job* job : others) {
          const size_t n = job->requests.size();
          std::vector<Reply> mine(std::make_move_iterator(replies.begin() + at),
                                  std::make_move_iterator(replies.begin() + at + n));
          at += n;
          job->done.set_value(std::move(mine));
        }
      } catch (...) {
        for (Job* job : others) job->done.set_exception(std::current_exception());
      }
    }
    if (!batch_.idle()) {
      const auto start = Clock::now();
      int64_t joined = 0;
      try {
        joined = batch_.step();
      } catch (...) {
        // A failed step fails every job of the batch (the exception reaches each future).
        joined = batch_.fail(std::current_exception());
      }
      const int64_t rows = batch_.running_rows();
      running_rows_ = rows;
      if (on_batch_ && rows > 0)
        on_batch_(1, static_cast<size_t>(rows),
                  std::chrono::duration<double>(Clock::now() - start).count());
      std::lock_guard<std::mutex> lock(mutex_);
      queued_inputs_ -= joined;
    }
  }
}

}  // namespace compacter::serve

// The collectives of data-parallel training, on libtorch's c10d: rank 0 serves a TCPStore at
// MASTER_ADDR:MASTER_PORT for the rendezvous, and every rank joins a ProcessGroupGloo (CPU
// tensors, TCP). Tensors travel flattened into one buffer per dtype (one collective for all
// tensors of a call, not one per tensor); the gradients' all-reduce goes by buckets started
// without waiting (dist/gradient_sync.h). Every wait has a timeout: a rank that dies or stops
// answering makes the others throw Error (naming this rank, the operation, the peer when the world
// has two ranks, and the timeout) instead of hanging. No transport of our own.
#pragma once
#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compacter/dist/environment.h"
#include "compacter/dist/gradient_sync.h"

namespace compacter::dist {

// Whether this build has c10d's Gloo backend (needs Gloo's headers at build time; Debian:
// libgloo-dev).
bool gloo_available();

class ProcessGroup {
 public:
  // Joins the group of env.world_size (> 1) ranks as env.rank; waits at most `timeout` for the
  // others to arrive, and `timeout` for each collective later. Throws Error when the rendezvous
  // fails or this build has no Gloo.
  ProcessGroup(const DistEnv& env, std::chrono::milliseconds timeout);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int64_t rank() const;
  int64_t world_size() const;
  std::string backend() const;  // "gloo"
  double timeout_seconds() const;
  // How training all-reduces the gradients (set by join_process_group).
  const GradientSyncOptions& gradient_sync() const { return gradient_sync_; }
  void set_gradient_sync(const GradientSyncOptions& o) { gradient_sync_ = o; }

  // Every rank's `tensors` (same shapes and dtypes on every rank, any device the backend takes)
  // become rank 0's, in place.
  void broadcast(const std::vector<torch::Tensor>& tensors);
  // Every rank's `tensors` become the element-wise sum over ranks, in place.
  void all_reduce_sum(const std::vector<torch::Tensor>& tensors);
  // ... the element-wise mean over ranks.
  void all_reduce_mean(const std::vector<torch::Tensor>& tensors);
  // Starts the element-wise sum over ranks of `buffer` (one contiguous tensor, in place) without
  // waiting for it: every rank must start the same sums, same shapes, in the same order (Gloo
  // pairs collectives by the order of the calls). The buffer must stay untouched until
  // wait_started() returns.
  void start_all_reduce_sum(const torch::Tensor& buffer);
  // Waits for every sum start_all_reduce_sum started (the collective timeout, the same errors as
  // the blocking collectives); returns the seconds this call waited.
  double wait_started();
  // Waits until every rank has called it (the collective timeout).
  void barrier();
  // Waits until every rank has called it, up to `timeout` (for a rank that waits while rank 0
  // does work of its own, such as an evaluation); a rank that exits still ends the wait at once
  // with an Error.
  void wait_for_all(const std::string& what, std::chrono::milliseconds timeout);
  // Every rank's `value` (same shape and dtype on every rank), in rank order, on every rank.
  std::vector<torch::Tensor> all_gather(const torch::Tensor& value);
  // Every rank's bytes (any length, each rank its own), in rank order, on every rank: two
  // all-gathers (the lengths, then the bytes padded to the longest).
  std::vector<std::string> all_gather_bytes(const std::string& mine);
  // Rank 0's `bytes` on every rank (in place): two broadcasts (the length, then the bytes).
  void broadcast_bytes(std::string& bytes);
  // Rank 0's `value` on every rank (one broadcast), e.g. whether a run resumes from a checkpoint.
  bool broadcast_bool(bool value);

  // Payload bytes this rank sent into collectives so far (started sums included), and the wall
  // time it spent blocked in them: for a started sum, only the time wait_started() waited, not
  // the time the sum ran while this rank computed.
  int64_t bytes_communicated() const;
  double seconds_communicating() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  GradientSyncOptions gradient_sync_;
};

// The process group of a data-parallel run, or nullptr for one process (env.world_size 1):
// joins with the collective timeout `timeout_seconds` (> 0, else UsageError naming
// --dist-timeout); training's gradients then go by `sync` (a bucket cap > 0, else UsageError
// naming --dist-bucket-mb).
std::unique_ptr<ProcessGroup> join_process_group(const DistEnv& env, double timeout_seconds,
                                                 const GradientSyncOptions& sync = {});

}  // namespace compacter::dist

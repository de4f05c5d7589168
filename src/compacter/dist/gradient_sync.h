// The sum over ranks of the trainable tensors' gradients in data-parallel training (README
// "Data-parallel training"), by buckets, optionally overlapped with the backward pass as
// PyTorch's DistributedDataParallel does it (written here on our ProcessGroup, not c10d's
// Reducer):
//
// - Buckets: the tensors in reverse optimizer order (roughly the order in which the backward
//   produces their gradients: the last layers' first), one dtype per bucket, a new bucket
//   whenever the next tensor would take it past `bucket_cap_mb` (a larger tensor gets a bucket
//   of its own). Each bucket has a persistent flat buffer.
// - Overlap: during the backward of a step's last micro-batch (arm()), a hook on each tensor's
//   gradient accumulator marks the tensor ready once its gradient is complete in .grad; as soon
//   as a bucket and every bucket before it are ready, its gradients are copied into its buffer
//   and its all-reduce is started without waiting. Buckets start strictly in index order on every
//   rank (Gloo pairs collectives by call order), so a bucket whose gradient comes late holds back
//   the ones after it; the result never depends on the timing.
// - Re-planning (DDP's bucket rebuild after its first iteration): the overlapped backward of the
//   first step records the order in which the gradients complete; finish() then plans the
//   buckets again in that order, rank 0's (broadcast: Gloo needs the same buckets on every rank;
//   tensors rank 0 saw no gradient of come last, in reverse optimizer order), so that later
//   buckets rarely wait for earlier ones. The order is kept in checkpoints (order()), and a
//   resumed run plans with it from its first step: its buckets are those of the uninterrupted
//   run (with three or more ranks, the order in which an all-reduce adds the ranks' values may
//   depend on the buckets' layout).
// - finish() (after the backward, before clipping): starts the buckets not started yet (all of
//   them without overlap; those of tensors without a gradient on this rank, as zeros: a rank whose
//   share was empty, a tensor the graph did not use), waits for all, and copies the sums back into
//   .grad. The sum is element-wise, so it is what one flattened all-reduce gives.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace compacter::dist {

class ProcessGroup;

struct GradientSyncOptions {
  double bucket_cap_mb = 25.0;  // MiB per bucket (DDP's bucket_cap_mb); > 0
  bool overlap = true;          // start buckets during the backward
};

// The buckets of `tensors` (given in optimizer order): lists of indices into `tensors`, in the
// order in which they are all-reduced (see above), filled in `order` (a permutation of the
// indices; empty: reverse optimizer order). cap_bytes > 0. Error when `order` is not a
// permutation of 0 .. tensors.size() - 1.
std::vector<std::vector<size_t>> plan_gradient_buckets(const std::vector<torch::Tensor>& tensors,
                                                       int64_t cap_bytes,
                                                       const std::vector<int64_t>& order = {});

class GradientSync {
 public:
  // `tensors`: the trainable tensors (leaves with requires_grad), in the optimizer's order, the
  // same shapes and dtypes on every rank. With overlap, installs one hook per tensor (removed by
  // the destructor). `order`: a completion order recorded earlier (order() of the run a
  // checkpoint continues), planned with at once and not re-planned; empty: re-plan after the
  // first step (with overlap).
  GradientSync(ProcessGroup& group, const std::vector<torch::Tensor>& tensors,
               const GradientSyncOptions& options, const std::vector<int64_t>& order = {});
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // Before the backward of a step's last micro-batch (nothing without overlap): from now on a
  // completed gradient may start its bucket's all-reduce.
  void arm();
  // After the step's last backward: every tensor's .grad becomes the sum over ranks (a tensor
  // without one gets one).
  void finish();

  size_t bucket_count() const;
  int64_t bytes_per_step() const;  // the gradients' bytes, all buckets
  // Over the steps so far: the bytes whose all-reduce started during the backward (overlapped),
  // and the seconds finish() waited for the all-reduces after the backward: the communication
  // the steps did not hide (without overlap: all of it).
  int64_t overlapped_bytes() const;
  double exposed_seconds() const;
  // Over the steps so far: how often a bucket was complete during the backward while an earlier
  // one was not, and so waited for it (0 when the plan's order is the order in which the backward
  // completes the gradients, at the granularity of buckets).
  int64_t held_back_buckets() const;
  // The completion order the buckets are planned in (indices into the tensors), once re-planned
  // or given; empty before.
  const std::vector<int64_t>& order() const;
  // Whether this object re-planned its buckets (not when it was given an order).
  bool replanned() const;

  struct State;  // (shared with the hooks)

 private:
  std::shared_ptr<State> state_;
};

}  // namespace compacter::dist

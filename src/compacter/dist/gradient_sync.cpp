// The bucketed, optionally overlapped all-reduce of the gradients: see gradient_sync.h.
#include "compacter/dist/gradient_sync.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include <map>
#include <mutex>

#include "compacter/core/error.h"
#include "compacter/dist/process_group.h"

namespace compacter::dist {

std::vector<std::vector<size_t>> plan_gradient_buckets(const std::vector<torch::Tensor>& tensors,
                                                       int64_t cap_bytes,
                                                       const std::vector<int64_t>& order) {
  check(cap_bytes > 0, "the gradient bucket cap must be positive, got ", cap_bytes, " bytes");
  std::vector<size_t> sequence;
  if (order.empty()) {
    for (size_t k = tensors.size(); k-- > 0;) sequence.push_back(k);
  } else {
    std::vector<char> seen(tensors.size(), 0);
    for (const int64_t k : order) {
      check(k >= 0 && static_cast<size_t>(k) < tensors.size() && !seen[static_cast<size_t>(k)],
            "data-parallel: the gradient bucket order is not a permutation of the ", tensors.size(),
            " trainable tensors (entry ", k, ")");
      seen[static_cast<size_t>(k)] = 1;
      sequence.push_back(static_cast<size_t>(k));
    }
    check(order.size() == tensors.size(), "data-parallel: the gradient bucket order has ",
          order.size(), " entries for ", tensors.size(), " trainable tensors");
  }
  std::vector<std::vector<size_t>> buckets;
  std::map<torch::ScalarType, size_t> open;  // each dtype's bucket being filled
  std::map<torch::ScalarType, int64_t> open_bytes;
  for (const size_t k : sequence) {
    const torch::ScalarType dtype = tensors[k].scalar_type();
    const int64_t bytes = tensors[k].numel() * tensors[k].element_size();
    const auto it = open.find(dtype);
    if (it == open.end() || (open_bytes[dtype] > 0 && open_bytes[dtype] + bytes > cap_bytes)) {
      open[dtype] = buckets.size();
      open_bytes[dtype] = 0;
      buckets.emplace_back();
    }
    buckets[open[dtype]].push_back(k);
    open_bytes[dtype] += bytes;
  }
  return buckets;
}

namespace {

struct Bucket {
  std::vector<size_t> members;  // indices into the tensors, in buffer order
  std::vector<int64_t> offsets;
  torch::Tensor buffer;
  size_t waiting = 0;  // members whose gradient is not complete yet in the armed backward
};

}  // namespace

struct GradientSync::State {
  ProcessGroup& group;
  std::vector<torch::Tensor> tensors;
  GradientSyncOptions options;
  std::vector<Bucket> buckets;
  std::vector<size_t> bucket_of;  // per tensor
  std::vector<char> ready;        // per tensor, in the armed backward
  size_t next = 0;                // the next bucket to start
  bool armed = false;
  std::mutex mutex;
  // The gradient accumulators must live as long as their hooks: the tensor keeps only a weak
  // reference, and a new accumulator (without the hook) would be made for the next graph.
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
  std::vector<uintptr_t> hook_keys;
  int64_t bytes_per_step = 0;
  int64_t overlapped_bytes = 0;
  double exposed_seconds = 0.0;
  int64_t held_back = 0;
  int64_t cap_bytes = 1;
  std::vector<int64_t> order;     // the completion order planned in (empty: not re-planned yet)
  std::vector<size_t> completed;  // the armed backward's completion order, until re-planned
  bool replanned = false;         // by this object (not given an order)

  State(ProcessGroup& g, const std::vector<torch::Tensor>& t, const GradientSyncOptions& o)
      : group(g), tensors(t), options(o) {}

  // Buckets, their buffers and bucket_of from a plan (plan_gradient_buckets).
  void build(const std::vector<std::vector<size_t>>& plan) {
    buckets.clear();
    bucket_of.assign(tensors.size(), 0);
    bytes_per_step = 0;
    for (const auto& members : plan) {
      Bucket b;
      b.members = members;
      int64_t numel = 0;
      for (size_t i : members) {
        b.offsets.push_back(numel);
        numel += tensors[i].numel();
        bucket_of[i] = buckets.size();
      }
      const torch::Tensor& first = tensors[members.front()];
      b.buffer = torch::empty({numel}, first.options().requires_grad(false));
      bytes_per_step += numel * first.element_size();
      buckets.push_back(std::move(b));
    }
  }

  // After the first overlapped step: rank 0's completion order (its gradients that never
  // completed last, in reverse optimizer order) on every rank, and the buckets planned in it.
  // When rank 0 saw no gradient complete (an empty share), every rank tries again next step.
  void replan() {
    const auto n = static_cast<int64_t>(tensors.size());
    torch::Tensor shared = torch::full({n}, -1, torch::kInt64);
    if (group.rank() == 0)
      for (size_t k = 0; k < completed.size(); ++k)
        shared[static_cast<int64_t>(k)] = static_cast<int64_t>(completed[k]);
    group.broadcast({shared});
    std::vector<int64_t> recorded;
    std::vector<char> seen(tensors.size(), 0);
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = shared[k].item<int64_t>();
      if (i < 0) break;
      recorded.push_back(i);
      seen[static_cast<size_t>(i)] = 1;
    }
    if (recorded.empty()) return;
    for (int64_t i = n; i-- > 0;)
      if (!seen[static_cast<size_t>(i)]) recorded.push_back(i);
    build(plan_gradient_buckets(tensors, cap_bytes, recorded));
    order = std::move(recorded);
    replanned = true;
  }

  void reset() {
    completed.clear();
    std::fill(ready.begin(), ready.end(), 0);
    for (auto& b : buckets) b.waiting = b.members.size();
    next = 0;
    armed = false;
  }

  // Copies the bucket's gradients (zeros where a tensor has none) into its buffer and starts its
  // all-reduce.
  void start(Bucket& b) {
    torch::NoGradGuard no_grad;
    for (size_t j = 0; j < b.members.size(); ++j) {
      const torch::Tensor& t = tensors[b.members[j]];
      torch::Tensor slot = b.buffer.slice(0, b.offsets[j], b.offsets[j] + t.numel());
      const torch::Tensor& g = t.grad();
      if (g.defined())
        slot.view(t.sizes()).copy_(g);
      else
        slot.zero_();
    }
    group.start_all_reduce_sum(b.buffer);
  }

  // A hook's call: tensor i's gradient is complete in its .grad.
  void gradient_ready(size_t i) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!armed) return;
    check(!ready[i], "data-parallel: the gradient of trainable tensor ", i,
          " was completed twice in one backward pass");
    ready[i] = 1;
    if (order.empty()) completed.push_back(i);
    // A bucket complete while an earlier one is not waits for it: the plan's order differs from
    // the order the backward completes the gradients in.
    if (--buckets[bucket_of[i]].waiting == 0 && bucket_of[i] > next) ++held_back;
    while (next < buckets.size() && buckets[next].waiting == 0) {
      start(buckets[next]);
      overlapped_bytes += buckets[next].buffer.numel() * buckets[next].buffer.element_size();
      ++next;
    }
  }
};

namespace {

class ReadyHook : public torch::autograd::FunctionPostHook {
 public:
  ReadyHook(std::weak_ptr<GradientSync::State> state, size_t index)
      : state_(std::move(state)), index_(index) {}
  torch::autograd::variable_list operator()(
      const torch::autograd::variable_list& outputs,
      const torch::autograd::variable_list& /*inputs*/) override {
    if (auto s = state_.lock()) s->gradient_ready(index_);
    return outputs;
  }

 private:
  std::weak_ptr<GradientSync::State> state_;
  size_t index_;
};

}  // namespace

GradientSync::GradientSync(ProcessGroup& group, const std::vector<torch::Tensor>& tensors,
                           const GradientSyncOptions& options, const std::vector<int64_t>& order)
    : state_(std::make_shared<State>(group, tensors, options)) {
  check_usage(options.bucket_cap_mb > 0, "--dist-bucket-mb must be positive, got ",
              options.bucket_cap_mb);
  State& s = *state_;
  s.cap_bytes = std::max<int64_t>(static_cast<int64_t>(options.bucket_cap_mb * 1024.0 * 1024.0), 1);
  s.ready.resize(tensors.size());
  s.build(plan_gradient_buckets(tensors, s.cap_bytes, order));
  s.order = order;
  s.reset();
  if (!options.overlap) return;
  for (size_t i = 0; i < tensors.size(); ++i) {
    std::shared_ptr<torch::autograd::Node> accumulator =
        torch::autograd::impl::grad_accumulator(tensors[i]);
    check(accumulator != nullptr, "data-parallel: trainable tensor ", i,
          " is not a leaf that requires a gradient");
    s.hook_keys.push_back(accumulator->add_post_hook(std::make_unique<ReadyHook>(state_, i)));
    s.accumulators.push_back(std::move(accumulator));
  }
}

GradientSync::~GradientSync() {
  for (size_t i = 0; i < state_->accumulators.size(); ++i)
    state_->accumulators[i]->del_post_hook(state_->hook_keys[i]);
}

void GradientSync::arm() {
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->reset();
  state_->armed = state_->options.overlap;
}

void GradientSync::finish() {
  State& s = *state_;
  std::lock_guard<std::mutex> lock(s.mutex);
  s.armed = false;
  for (; s.next < s.buckets.size(); ++s.next) s.start(s.buckets[s.next]);
  s.exposed_seconds += s.group.wait_started();
  torch::NoGradGuard no_grad;
  for (const Bucket& b : s.buckets)
    for (size_t j = 0; j < b.members.size(); ++j) {
      torch::Tensor& t = s.tensors[b.members[j]];
      if (!t.grad().defined()) t.mutable_grad() = torch::empty_like(t);
      t.mutable_grad().copy_(
          b.buffer.slice(0, b.offsets[j], b.offsets[j] + t.numel()).view(t.sizes()));
    }
  if (s.options.overlap && s.order.empty()) s.replan();
  s.reset();
}

size_t GradientSync::bucket_count() const {
  return state_->buckets.size();
}
int64_t GradientSync::bytes_per_step() const {
  return state_->bytes_per_step;
}
int64_t GradientSync::overlapped_bytes() const {
  return state_->overlapped_bytes;
}
double GradientSync::exposed_seconds() const {
  return state_->exposed_seconds;
}
int64_t GradientSync::held_back_buckets() const {
  return state_->held_back;
}
const std::vector<int64_t>& GradientSync::order() const {
  return state_->order;
}
bool GradientSync::replanned() const {
  return state_->replanned;
}

}  // namespace compacter::dist

// c10d's TCPStore + ProcessGroupGloo behind the collectives training needs: see process_group.h.
// Compiled alone (outside the unity batches) with USE_C10D_GLOO when Gloo's headers are there.
#include "compacter/dist/process_group.h"

#include <torch/torch.h>

#ifdef COMPACTER_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

#include <algorithm>
#include <cstring>
#include <map>

#include "compacter/core/error.h"

namespace compacter::dist {

namespace {

using Clock = std::chrono::steady_clock;

std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

bool loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// Tensors grouped by dtype, each group flattened into one contiguous buffer (and back).
struct Buckets {
  std::map<torch::ScalarType, std::vector<torch::Tensor>> groups;
  explicit Buckets(const std::vector<torch::Tensor>& tensors) {
    for (const auto& t : tensors) groups[t.scalar_type()].push_back(t);
  }
  static torch::Tensor flatten(const std::vector<torch::Tensor>& ts) {
    std::vector<torch::Tensor> flat;
    for (const auto& t : ts) flat.push_back(t.detach().reshape({-1}));
    return torch::cat(flat);
  }
  static void unflatten(const torch::Tensor& buffer, const std::vector<torch::Tensor>& ts) {
    torch::NoGradGuard no_grad;
    int64_t offset = 0;
    for (const auto& t : ts) {
      const int64_t n = t.numel();
      t.detach().copy_(buffer.slice(0, offset, offset + n).view(t.sizes()));
      offset += n;
    }
  }
};

}  // namespace

#ifdef COMPACTER_HAVE_GLOO

bool gloo_available() {
  return true;
}

struct ProcessGroup::Impl {
  DistEnv env;
  std::chrono::milliseconds timeout;
  c10::intrusive_ptr<::c10d::TCPStore> store;
  c10::intrusive_ptr<::c10d::ProcessGroupGloo> group;
  int64_t bytes = 0;
  double seconds = 0.0;
  int64_t waits = 0;
  std::vector<c10::intrusive_ptr<::c10d::Work>> started;  // start_all_reduce_sum's, in order

  // Runs `f`, turning c10d's and Gloo's exceptions into an Error that says what failed.
  // timed: counted in `seconds` (the collectives, not the rendezvous or the waits).
  template <typename F>
  void guarded(const std::string& op, F&& f, bool timed = true) {
    const auto t0 = Clock::now();
    try {
      f();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      const std::string peer =
          env.world_size == 2 ? cat("rank ", 1 - env.rank) : std::string("another rank");
      throw Error(cat("data-parallel ", op, " failed on rank ", env.rank, " of ", env.world_size,
                      ": ", peer, " stopped or did not answer within the ",
                      timeout.count() / 1000.0, " s timeout (", first_line(e.what()), ")"));
    }
    if (timed) seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  }
};

ProcessGroup::ProcessGroup(const DistEnv& env, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  check(env.world_size > 1, "a process group needs a world size above 1, got ", env.world_size);
  check(timeout.count() > 0, "the collective timeout must be positive");
  impl_->env = env;
  impl_->timeout = timeout;
  impl_->guarded(
      cat("rendezvous at ", env.master_addr, ":", env.master_port),
      [&] {
        ::c10d::TCPStoreOptions so;
        so.port = static_cast<std::uint16_t>(env.master_port);
        so.isServer = env.rank == 0 && !env.agent_store;
        so.numWorkers = static_cast<size_t>(env.world_size);
        so.timeout = timeout;
        impl_->store = c10::make_intrusive<::c10d::TCPStore>(env.master_addr, so);
        auto options = ::c10d::ProcessGroupGloo::Options::create();
        options->timeout = timeout;
        options->threads = 1;
        options->devices.push_back(
            loopback(env.master_addr)
                ? ::c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                : ::c10d::ProcessGroupGloo::createDefaultDevice());
        impl_->group = c10::make_intrusive<::c10d::ProcessGroupGloo>(
            impl_->store, static_cast<int>(env.rank), static_cast<int>(env.world_size), options);
      },
      false);
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::broadcast(const std::vector<torch::Tensor>& tensors) {
  if (tensors.empty()) return;
  Buckets b(tensors);
  for (auto& [dtype, ts] : b.groups) {
    std::vector<torch::Tensor> buffer{Buckets::flatten(ts)};
    impl_->bytes += buffer[0].numel() * buffer[0].element_size();
    impl_->guarded("broadcast", [&] { impl_->group->broadcast(buffer)->wait(); });
    Buckets::unflatten(buffer[0], ts);
  }
}

void ProcessGroup::all_reduce_sum(const std::vector<torch::Tensor>& tensors) {
  if (tensors.empty()) return;
  Buckets b(tensors);
  for (auto& [dtype, ts] : b.groups) {
    std::vector<torch::Tensor> buffer{Buckets::flatten(ts)};
    impl_->bytes += buffer[0].numel() * buffer[0].element_size();
    impl_->guarded("all-reduce", [&] { impl_->group->allreduce(buffer)->wait(); });
    Buckets::unflatten(buffer[0], ts);
  }
}

void ProcessGroup::start_all_reduce_sum(const torch::Tensor& buffer) {
  check(buffer.is_contiguous(), "start_all_reduce_sum needs a contiguous buffer");
  std::vector<torch::Tensor> tensors{buffer};
  impl_->bytes += buffer.numel() * buffer.element_size();
  impl_->guarded(
      "all-reduce", [&] { impl_->started.push_back(impl_->group->allreduce(tensors)); }, false);
}

double ProcessGroup::wait_started() {
  const double before = impl_->seconds;
  impl_->guarded("all-reduce", [&] {
    for (auto& work : impl_->started) work->wait(impl_->timeout);
  });
  impl_->started.clear();
  return impl_->seconds - before;
}

void ProcessGroup::barrier() {
  impl_->guarded("barrier", [&] { impl_->group->barrier()->wait(); });
}

void ProcessGroup::wait_for_all(const std::string& what, std::chrono::milliseconds timeout) {
  const std::string key = cat("compacter/wait/", impl_->waits++);
  const auto saved = impl_->timeout;
  impl_->timeout = timeout;
  impl_->guarded(
      cat("wait (", what, ")"),
      [&] {
        if (impl_->store->add(key, 1) == impl_->env.world_size)
          impl_->store->set(key + "/all", {1});
        impl_->store->wait({key + "/all"}, timeout);
      },
      false);
  impl_->timeout = saved;
}

std::vector<torch::Tensor> ProcessGroup::all_gather(const torch::Tensor& value) {
  std::vector<std::vector<torch::Tensor>> out(1);
  for (int64_t r = 0; r < impl_->env.world_size; ++r) out[0].push_back(torch::empty_like(value));
  std::vector<torch::Tensor> in{value.contiguous()};
  impl_->bytes += value.numel() * value.element_size();
  impl_->guarded("all-gather", [&] { impl_->group->allgather(out, in)->wait(); });
  return out[0];
}

#else  // no Gloo in this build

bool gloo_available() {
  return false;
}

struct ProcessGroup::Impl {
  DistEnv env;
  std::chrono::milliseconds timeout{0};
  int64_t bytes = 0;
  double seconds = 0.0;
};

ProcessGroup::ProcessGroup(const DistEnv& env, std::chrono::milliseconds timeout) {
  throw Error(cat("WORLD_SIZE=", env.world_size,
                  ": this build has no data-parallel backend (c10d's Gloo needs Gloo's headers at "
                  "build time: Debian's libgloo-dev)"));
}
ProcessGroup::~ProcessGroup() = default;
void ProcessGroup::broadcast(const std::vector<torch::Tensor>&) {}
void ProcessGroup::all_reduce_sum(const std::vector<torch::Tensor>&) {}
void ProcessGroup::start_all_reduce_sum(const torch::Tensor&) {}
double ProcessGroup::wait_started() {
  return 0.0;
}
void ProcessGroup::barrier() {}
void ProcessGroup::wait_for_all(const std::string&, std::chrono::milliseconds) {}
std::vector<torch::Tensor> ProcessGroup::all_gather(const torch::Tensor& value) {
  return {value};
}

#endif

std::vector<std::string> ProcessGroup::all_gather_bytes(const std::string& mine) {
  const torch::Tensor length = torch::tensor({static_cast<int64_t>(mine.size())}, torch::kInt64);
  std::vector<int64_t> lengths;
  int64_t longest = 1;  // never an empty buffer
  for (const auto& l : all_gather(length)) {
    lengths.push_back(l.item<int64_t>());
    longest = std::max(longest, lengths.back());
  }
  torch::Tensor buffer = torch::zeros({longest}, torch::kUInt8);
  std::memcpy(buffer.data_ptr<uint8_t>(), mine.data(), mine.size());
  const std::vector<torch::Tensor> all = all_gather(buffer);
  std::vector<std::string> out;
  for (size_t r = 0; r < all.size(); ++r) {
    const torch::Tensor b = all[r].contiguous();
    out.emplace_back(reinterpret_cast<const char*>(b.data_ptr<uint8_t>()),
                     static_cast<size_t>(lengths[r]));
  }
  return out;
}

void ProcessGroup::broadcast_bytes(std::string& bytes) {
  torch::Tensor length = torch::tensor({static_cast<int64_t>(bytes.size())}, torch::kInt64);
  broadcast({length});
  const int64_t n = length.item<int64_t>();
  torch::Tensor buffer = torch::zeros({std::max<int64_t>(n, 1)}, torch::kUInt8);
  if (rank() == 0) std::memcpy(buffer.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  broadcast({buffer});
  bytes.assign(reinterpret_cast<const char*>(buffer.data_ptr<uint8_t>()), static_cast<size_t>(n));
}

bool ProcessGroup::broadcast_bool(bool value) {
  torch::Tensor flag = torch::tensor({value ? 1 : 0}, torch::kInt64);
  broadcast({flag});
  return flag.item<int64_t>() != 0;
}

std::unique_ptr<ProcessGroup> join_process_group(const DistEnv& env, double timeout_seconds,
                                                 const GradientSyncOptions& sync) {
  if (!env.distributed()) return nullptr;
  check_usage(timeout_seconds > 0, "--dist-timeout must be positive, got ", timeout_seconds);
  check_usage(sync.bucket_cap_mb > 0, "--dist-bucket-mb must be positive, got ",
              sync.bucket_cap_mb);
  auto group = std::make_unique<ProcessGroup>(
      env, std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000.0 + 0.5)));
  group->set_gradient_sync(sync);
  return group;
}

int64_t ProcessGroup::rank() const {
  return impl_->env.rank;
}
int64_t ProcessGroup::world_size() const {
  return impl_->env.world_size;
}
std::string ProcessGroup::backend() const {
  return "gloo";
}
double ProcessGroup::timeout_seconds() const {
  return impl_->timeout.count() / 1000.0;
}
int64_t ProcessGroup::bytes_communicated() const {
  return impl_->bytes;
}
double ProcessGroup::seconds_communicating() const {
  return impl_->seconds;
}

void ProcessGroup::all_reduce_mean(const std::vector<torch::Tensor>& tensors) {
  all_reduce_sum(tensors);
  torch::NoGradGuard no_grad;
  for (const auto& t : tensors) t.detach().div_(static_cast<double>(world_size()));
}

}  // namespace compacter::dist

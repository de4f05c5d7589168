// See data_parallel.h.
#include "data_parallel.h"

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "common.h"
#include "compacter/core/error.h"
#include "compacter/core/interrupt.h"
#include "compacter/core/subprocess.h"
#include "compacter/dist/launch.h"

namespace compacter::cli {

void add_data_parallel_options(CLI::App& cmd, DataParallelCli& o) {
  cmd.add_option("--nproc", o.nproc,
                 "data-parallel: start N local ranks (Gloo on loopback); --batch-size stays the "
                 "global batch. Under torchrun (WORLD_SIZE set) each process is one rank")
      ->capture_default_str();
  cmd.add_option("--dist-timeout", o.dist_timeout,
                 "data-parallel: seconds a rank waits for the others in a collective before it "
                 "stops with an error")
      ->capture_default_str();
  cmd.add_option("--dist-bucket-mb", o.dist_bucket_mb,
                 "data-parallel: MiB of gradients per all-reduce bucket (as DDP's bucket_cap_mb)")
      ->capture_default_str();
  cmd.add_option("--dist-overlap", o.dist_overlap,
                 "data-parallel: on: start each bucket's all-reduce during the backward as soon "
                 "as its gradients are complete; off: all of them after the backward")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
}

std::optional<dist::DistEnv> rank_environment(const DataParallelCli& o,
                                              const std::string& command) {
  check_usage(o.nproc >= 1, "--nproc must be at least 1, got ", o.nproc);
  const dist::DistEnv env = dist::dist_env_from_process();
  if (env.distributed()) {
    check_usage(o.nproc == 1 || o.nproc == env.world_size, "--nproc ", o.nproc,
                " differs from WORLD_SIZE=", env.world_size,
                " (under torchrun, leave --nproc out)");
    return env;
  }
  if (o.nproc == 1) return env;
  // As torchrun: the cores shared among the ranks unless OMP_NUM_THREADS says otherwise.
  if (!std::getenv("OMP_NUM_THREADS")) {
    const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
    setenv("OMP_NUM_THREADS", std::to_string(std::max<int64_t>(1, cores / o.nproc)).c_str(), 1);
  }
  const dist::LaunchResult r = dist::launch_local_ranks(current_executable(), arguments(), o.nproc);
  check(r.succeeded(), command, " --nproc ", o.nproc, ": rank ", r.failed_rank, " failed (",
        r.failure, "); the other ranks were stopped");
  if (r.interrupted)
    throw Interrupted(cat(command, " --nproc ", o.nproc, ": interrupted (continue with --resume)"));
  return std::nullopt;
}

void RankProgress::info(const std::string& line) {
  if (rank_ == 0) inner_.info(line);
}
void RankProgress::warning(const std::string& line) {
  inner_.warning(rank_ == 0 ? line : cat("rank ", rank_, ": ", line));
}
void RankProgress::status(const std::string& line) {
  if (rank_ == 0) inner_.status(line);
}

}  // namespace compacter::cli

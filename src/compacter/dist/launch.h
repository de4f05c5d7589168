// `compacter train --nproc N`: N local ranks of one data-parallel run, started as copies of this
// program with the torchrun environment set (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1
// and a free MASTER_PORT), as torchrun --standalone would. They share this process's stdout and
// stderr. When one rank fails, the others are stopped (SIGTERM, then SIGKILL after a grace
// period) and the result names the rank that failed first. Ctrl-C reaches every rank (they agree
// to stop at the same step and rank 0 saves a checkpoint) while this process ignores it and waits;
// ranks that exit with 130 (interrupted) do not stop the others.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace compacter::dist {

struct LaunchResult {
  int64_t failed_rank = -1;  // the first rank that failed; -1: all succeeded
  std::string failure;       // how it failed: "exit code 1", "killed by signal 9", ...
  bool interrupted = false;  // some rank exited with 130 (Ctrl-C) and none failed otherwise
  bool succeeded() const { return failed_rank < 0; }
};

// A TCP port on 127.0.0.1 that is free now (the kernel's choice for port 0).
int free_local_port();

// Runs `nproc` ranks of `exe args...` and waits for all of them. Throws Error when a rank cannot
// be started (the ranks already started are stopped).
LaunchResult launch_local_ranks(const std::string& exe, const std::vector<std::string>& args,
                                int64_t nproc, double grace_seconds = 10.0);

}  // namespace compacter::dist

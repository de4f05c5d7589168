// Which rank of a data-parallel run this process is, read from the environment torchrun sets
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; PyTorch's "env://" initialisation) and
// that `compacter train --nproc N` sets for the ranks it starts. WORLD_SIZE unset or 1: one
// process, no process group (the other variables are then not read).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace compacter::dist {

struct DistEnv {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  std::string master_addr;  // where rank 0's TCPStore listens
  int master_port = 0;
  // TORCHELASTIC_USE_AGENT_STORE=True: torchrun's agent already serves the TCPStore at
  // MASTER_ADDR:MASTER_PORT, so rank 0 connects to it instead of serving one.
  bool agent_store = false;
  bool distributed() const { return world_size > 1; }
};

// A variable's value, or nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// Reads the variables through `lookup`. Throws Error naming the variable when one is missing or
// malformed (not a whole number, RANK or LOCAL_RANK outside [0, WORLD_SIZE), a port outside
// 1..65535, an empty MASTER_ADDR). LOCAL_RANK defaults to RANK when unset.
DistEnv parse_dist_env(const EnvLookup& lookup);

// parse_dist_env on this process's environment.
DistEnv dist_env_from_process();

}  // namespace compacter::dist

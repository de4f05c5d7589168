// The torchrun environment of a rank: see environment.h.
#include "compacter/dist/environment.h"

#include <cstdlib>

#include "compacter/core/error.h"

namespace compacter::dist {

namespace {

// A whole decimal number (optional leading '-'), or an Error naming the variable.
int64_t parse_integer(const std::string& name, const std::string& value) {
  size_t i = value.size() > 1 && value[0] == '-' ? 1 : 0;
  bool ok = i < value.size();
  for (; i < value.size(); ++i) ok = ok && value[i] >= '0' && value[i] <= '9';
  check(ok && value.size() <= 18, "environment variable ", name, "=\"", value,
        "\": expected a whole number");
  return std::stoll(value);
}

}  // namespace

DistEnv parse_dist_env(const EnvLookup& lookup) {
  DistEnv e;
  const auto world = lookup("WORLD_SIZE");
  if (!world) return e;
  e.world_size = parse_integer("WORLD_SIZE", *world);
  check(e.world_size >= 1, "environment variable WORLD_SIZE=", e.world_size,
        ": expected at least 1");
  if (e.world_size == 1) return e;
  auto required = [&](const std::string& name) {
    const auto v = lookup(name);
    check(v.has_value(), "environment variable ", name, " is not set (WORLD_SIZE=", e.world_size,
          " asks for a data-parallel run: set RANK, MASTER_ADDR and MASTER_PORT too, as torchrun "
          "does)");
    return *v;
  };
  e.rank = parse_integer("RANK", required("RANK"));
  check(e.rank >= 0 && e.rank < e.world_size, "environment variable RANK=", e.rank,
        ": expected 0 to ", e.world_size - 1, " (WORLD_SIZE=", e.world_size, ")");
  const auto local = lookup("LOCAL_RANK");
  e.local_rank = local ? parse_integer("LOCAL_RANK", *local) : e.rank;
  check(e.local_rank >= 0 && e.local_rank < e.world_size,
        "environment variable LOCAL_RANK=", e.local_rank, ": expected 0 to ", e.world_size - 1,
        " (WORLD_SIZE=", e.world_size, ")");
  e.master_addr = required("MASTER_ADDR");
  check(!e.master_addr.empty(),
        "environment variable MASTER_ADDR is empty: expected the host of "
        "rank 0");
  const int64_t port = parse_integer("MASTER_PORT", required("MASTER_PORT"));
  check(port >= 1 && port <= 65535, "environment variable MASTER_PORT=", port,
        ": expected a port from 1 to 65535");
  e.master_port = static_cast<int>(port);
  // torchrun (torch >= 1.x elastic) serves the store itself and says so in this variable; rank 0
  // then joins as a client, as PyTorch's own env:// initialisation does.
  const auto agent = lookup("TORCHELASTIC_USE_AGENT_STORE");
  e.agent_store = agent && (*agent == "True" || *agent == "true" || *agent == "1");
  return e;
}

DistEnv dist_env_from_process() {
  return parse_dist_env([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  });
}

}  // namespace compacter::dist

// Starting the local ranks of a data-parallel run: see launch.h.
#include "compacter/dist/launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "compacter/core/error.h"

extern char** environ;

namespace compacter::dist {

namespace {

std::string describe(int status) {
  if (WIFEXITED(status)) return cat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return cat("killed by signal ", WTERMSIG(status));
  return "ended abnormally";
}

bool interrupted(int status) {
  return WIFEXITED(status) && WEXITSTATUS(status) == 130;
}

bool succeeded(int status) {
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// This process's environment without the torchrun variables, plus this rank's.
std::vector<std::string> rank_environment(int64_t rank, int64_t nproc, int port) {
  static const char* const kNames[] = {
      "RANK=", "LOCAL_RANK=", "WORLD_SIZE=", "MASTER_ADDR=", "MASTER_PORT=", "LOCAL_WORLD_SIZE="};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    bool ours = false;
    for (const char* name : kNames) ours = ours || std::strncmp(*e, name, std::strlen(name)) == 0;
    if (!ours) env.emplace_back(*e);
  }
  env.push_back(cat("RANK=", rank));
  env.push_back(cat("LOCAL_RANK=", rank));
  env.push_back(cat("WORLD_SIZE=", nproc));
  env.push_back(cat("LOCAL_WORLD_SIZE=", nproc));
  env.push_back("MASTER_ADDR=127.0.0.1");
  env.push_back(cat("MASTER_PORT=", port));
  return env;
}

// Stops the ranks still running: SIGTERM, SIGKILL after `grace_seconds`; reaps them all.
void stop_all(std::vector<pid_t>& pids, double grace_seconds) {
  for (pid_t p : pids)
    if (p > 0) kill(p, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(grace_seconds));
  for (pid_t& p : pids) {
    if (p <= 0) continue;
    int status = 0;
    while (waitpid(p, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        kill(p, SIGKILL);
        waitpid(p, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    p = -1;
  }
}

}  // namespace

int free_local_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  check(fd >= 0, "cannot open a socket to find a free port: ", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  const int err = errno;
  close(fd);
  check(ok, "cannot find a free port on 127.0.0.1: ", std::strerror(err));
  return ntohs(addr.sin_port);
}

LaunchResult launch_local_ranks(const std::string& exe, const std::vector<std::string>& args,
                                int64_t nproc, double grace_seconds) {
  check(nproc >= 1, "--nproc must be at least 1, got ", nproc);
  const int port = free_local_port();
  std::vector<pid_t> pids(static_cast<size_t>(nproc), -1);
  // The ranks get SIGINT and SIGTERM's default action back (ignored here while they run).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  struct sigaction ignore {
  }, saved_int{};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ignore, &saved_int);
  for (int64_t r = 0; r < nproc; ++r) {
    std::vector<std::string> all{exe};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env = rank_environment(r, nproc, port);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = 0;
    const int err = posix_spawn(&pid, exe.c_str(), nullptr, &attr, argv.data(), envp.data());
    if (err != 0) {
      stop_all(pids, grace_seconds);
      posix_spawnattr_destroy(&attr);
      sigaction(SIGINT, &saved_int, nullptr);
      throw Error(cat("cannot start rank ", r, " (", exe, "): ", std::strerror(err)));
    }
    pids[static_cast<size_t>(r)] = pid;
  }
  LaunchResult result;
  int64_t running = nproc;
  while (running > 0) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int64_t r = 0; r < nproc; ++r) {
      if (pids[static_cast<size_t>(r)] != pid) continue;
      pids[static_cast<size_t>(r)] = -1;
      --running;
      if (interrupted(status)) {
        result.interrupted = true;
      } else if (!succeeded(status) && result.succeeded()) {
        result.failed_rank = r;
        result.failure = describe(status);
        stop_all(pids, grace_seconds);
        running = 0;
      }
    }
  }
  posix_spawnattr_destroy(&attr);
  sigaction(SIGINT, &saved_int, nullptr);
  if (!result.succeeded()) result.interrupted = false;
  return result;
}

}  // namespace compacter::dist

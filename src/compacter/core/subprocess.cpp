// Child processes: see subprocess.h.
#include "compacter/core/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "compacter/core/error.h"

extern char** environ;

namespace compacter {

bool ChildResult::succeeded() const {
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string ChildResult::describe_status() const {
  if (WIFEXITED(status)) return cat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return cat("killed by signal ", WTERMSIG(status));
  return "ended abnormally";
}

std::string tail_lines(const std::string& text, size_t count) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  std::string out;
  for (size_t i = lines.size() > count ? lines.size() - count : 0; i < lines.size(); ++i)
    out += lines[i] + "\n";
  return out;
}

std::string current_executable() {
  return std::filesystem::read_symlink("/proc/self/exe").string();
}

ChildResult run_child(const std::string& exe, const std::vector<std::string>& args,
                      const std::function<void(const std::string&)>& on_stderr) {
  int out_pipe[2], err_pipe[2];
  const bool piped = pipe2(out_pipe, O_CLOEXEC) == 0;  // before errno is read below
  check(piped, "cannot create a pipe: ", std::strerror(errno));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    throw Error(cat("cannot create a pipe: ", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  std::vector<std::string> all{exe};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (spawned != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    throw Error(cat("cannot start ", exe, ": ", std::strerror(spawned)));
  }
  ChildResult r;
  std::string err;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      if (i == 0) {
        r.out.append(buf, static_cast<size_t>(n));
      } else {
        if (on_stderr) on_stderr(std::string(buf, static_cast<size_t>(n)));
        err.append(buf, static_cast<size_t>(n));
        if (err.size() > 64 * 1024) err.erase(0, err.size() - 16 * 1024);
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  while (waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  r.err_tail = tail_lines(err, 12);
  return r;
}

}  // namespace compacter

// Running a child program and collecting its output: posix_spawn, stdout kept whole, stderr passed
// on line by line as it comes (to show a child's progress) with its last lines kept for errors.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace compacter {

struct ChildResult {
  int status = 0;        // as waitpid() reports it
  std::string out;       // everything the child wrote to stdout
  std::string err_tail;  // the last non-empty lines of its stderr
  bool succeeded() const;
  std::string describe_status() const;  // "exit code 3", "killed by signal 9", ...
};

// Runs `exe` with `args` (argv[1..]), the environment inherited; `on_stderr` (may be empty) gets
// the child's stderr in chunks as they arrive. Throws Error when the program cannot be started.
ChildResult run_child(const std::string& exe, const std::vector<std::string>& args,
                      const std::function<void(const std::string&)>& on_stderr = {});

// The path of the running program (/proc/self/exe).
std::string current_executable();

// The last `count` non-empty lines of `text`, each ending in a newline.
std::string tail_lines(const std::string& text, size_t count);

}  // namespace compacter

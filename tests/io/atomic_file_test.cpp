// core/atomic_file.h: a write replaces the file whole; the temporaries a killed writer left
// beside it ("<name>.tmp-<pid>", issue #13's kill -9 runs found one) are removed by the next
// write to that file when their process is gone, and kept while it runs; read_file's errors.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "support/test_support.h"

namespace compacter {
namespace {

void touch(const std::string& path) {
  std::ofstream(path) << "partial";
}

// A process id that ran and has exited (reaped): no process has it, barring reuse.
pid_t gone_pid() {
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  return child;
}

TEST(AtomicFile, AWriteRemovesTheTemporariesOfWritersThatAreGone) {
  testing::TempDir dir;
  const std::string target = dir.file("model.safetensors");
  const std::string stale = target + ".tmp-" + std::to_string(gone_pid());
  const std::string running = target + ".tmp-" + std::to_string(getppid());  // our parent runs
  const std::string other = dir.file("config.json.tmp-" + std::to_string(gone_pid()));
  const std::string odd = target + ".tmp-notapid";
  for (const auto& p : {stale, running, other, odd}) touch(p);
  write_text_atomically(target, "whole");
  EXPECT_FALSE(std::filesystem::exists(stale)) << "a dead writer's temporary stays";
  EXPECT_TRUE(std::filesystem::exists(running)) << "a running writer's temporary was removed";
  EXPECT_TRUE(std::filesystem::exists(other)) << "another file's temporary was touched";
  EXPECT_TRUE(std::filesystem::exists(odd));
  EXPECT_EQ(read_file(target), "whole");
}

TEST(AtomicFile, ReadFileNamesWhatIsWrong) {
  testing::TempDir dir;
  try {
    read_file(dir.file("missing.json"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.json: file not found"), std::string::npos)
        << e.what();
  }
  try {
    read_file(dir.path());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is a folder"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace compacter

// Faults injected into the running program (issue #13): a full disk, simulated with a file-size
// limit (RLIMIT_FSIZE; SIGXFSZ ignored, so a write past it fails with EFBIG as on a full disk),
// while `init-model --force` replaces a model and while `train` saves its checkpoint. Each time:
// a clear error naming the file, exit 1, the previous files byte for byte as they were, and no
// partial or temporary file left behind. Also a read-only output folder: the tests run as root,
// which file permissions do not stop, so the program runs as user nobody (65534, setuid in the
// forked child before exec); where that is impossible the test is skipped, saying why.
// Then the same two faults aimed at one file each (tests/cli/fault_preload: ENOSPC on writing,
// EROFS on creating, for the paths named): train's adapter, its results.json, its second
// checkpoint, and convert's model. The run must stop with the C library's words for the fault and
// the file's name, keep what it had written before, leave no .tmp / .new / .old behind, and
// `--resume` must then finish it.
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/test_support.h"

namespace compacter {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::TempDir;

constexpr int kCannotDropPrivileges = 99;

// Runs `compacter ARGS` through /bin/sh in a forked child; stderr into `err`. With `max_bytes`,
// files are limited to that many bytes; with `as_nobody` (when running as root), the child
// becomes user and group 65534 first (exit kCannotDropPrivileges when it cannot).
// `env` (NAME=VALUE ... ) is set for the program only, not for the shell's redirections.
int run_child(const std::string& args, rlim_t max_bytes, bool as_nobody, std::string& err,
              const TempDir& tmp, const std::string& env = "") {
  const std::string command =
      env + "'" + COMPACTER_BINARY + "' " + args + " >" + tmp.file("out") + " 2>" + tmp.file("err");
  const pid_t pid = fork();
  if (pid == 0) {
    if (max_bytes != RLIM_INFINITY) {
      rlimit limit{max_bytes, max_bytes};
      setrlimit(RLIMIT_FSIZE, &limit);
      signal(SIGXFSZ, SIG_IGN);  // inherited across exec: writes fail with EFBIG instead
    }
    if (as_nobody && geteuid() == 0 &&
        (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
      _exit(kCannotDropPrivileges);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  err = read_file(tmp.file("err"));
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int run_with_file_limit(const std::string& args, rlim_t max_bytes, std::string& err,
                        const TempDir& tmp) {
  return run_child(args, max_bytes, false, err, tmp);
}

// Every file under `dir` (relative path -> bytes).
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = read_file(e.path());
  return out;
}

TEST(FaultInjection, FullDiskWhileReplacingAModelKeepsThePreviousOne) {
  TempDir dir;
  const std::string config = testing::write_tiny_t5_config(dir, 5000);  // ~0.8 MB of weights
  const std::string model = dir.path() + "/model";
  auto r = testing::run_compacter("init-model --model-config " + config + " --out " + model +
                                  " --seed 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto before = snapshot(model);
  std::string err;
  const int code = run_with_file_limit(
      "init-model --model-config " + config + " --out " + model + " --seed 2 --force", 64 << 10,
      err, dir);
  EXPECT_EQ(code, 1) << err;
  EXPECT_NE(err.find(model + "/model.safetensors"), std::string::npos) << err;
  EXPECT_NE(err.find("File too large"), std::string::npos) << err;
  EXPECT_EQ(snapshot(model), before);  // same files, same bytes, nothing added
}

TEST(FaultInjection, FullDiskWhileTrainingSavesLeavesNoPartialFile) {
  REQUIRE_SHARED("data/glue/RTE/train.tsv");
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  TempDir dir;
  const std::string model = dir.path() + "/model";
  auto init = testing::init_tiny_t5_with_t5_vocabulary(model);  // ~4 MB: no checkpoint fits
  ASSERT_EQ(init.exit_code, 0) << init.err;
  const std::string run = dir.path() + "/run";
  std::string err;
  const int code = run_with_file_limit(
      "train --model " + model + " --tokenizer " +
          testing::shared_path("data/t5-tokenizer/spiece.model") + " --task rte --data-dir " +
          testing::shared_path("data/glue/RTE") +
          " --method full --max-train-samples 8 --max-steps 2 --batch-size 4 --save-steps 1"
          " --eval-steps 1000 --max-new-tokens 2 --out " +
          run,
      256 << 10, err, dir);
  EXPECT_EQ(code, 1) << err;
  EXPECT_NE(err.find("File too large"), std::string::npos) << err;
  for (const auto& [name, bytes] : snapshot(run)) {
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << "left behind: " << name;
    EXPECT_EQ(name.find(".new"), std::string::npos) << "left behind: " << name;
    EXPECT_LE(bytes.size(), size_t{256} << 10) << name;
  }
  EXPECT_FALSE(fs::exists(run + "/checkpoint/state.json"));  // no checkpoint half-written
}

TEST(FaultInjection, ReadOnlyOutputFolderIsAClearErrorAndKeepsTheModel) {
  TempDir dir;
  // nobody must reach the folder, read the config and write the err/out files; not the model.
  fs::permissions(dir.path(), fs::perms::all);
  const std::string config = testing::write_tiny_t5_config(dir, 500);
  const std::string model = dir.path() + "/model";
  auto r = testing::run_compacter("init-model --model-config " + config + " --out " + model +
                                  " --seed 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  fs::permissions(model, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                             fs::perms::others_read | fs::perms::others_exec);
  const auto before = snapshot(model);
  std::string err;
  // First: can this sandbox run the program as nobody at all?
  const int probe = run_child("--version", RLIM_INFINITY, true, err, dir);
  if (probe == kCannotDropPrivileges)
    GTEST_SKIP() << "running as root and setuid(65534) failed: no way to make a folder read-only "
                    "here";
  if (probe != 0)
    GTEST_SKIP() << "the program does not start as user nobody (exit " << probe
                 << "; the build folder may not be readable to it): " << err;
  // Is the folder really read-only to the child? (root without setuid would write.)
  const int touch_probe = run_child("--version >/dev/null && touch '" + model + "/probe'",
                                    RLIM_INFINITY, true, err, dir);
  if (touch_probe == 0) {
    fs::remove(model + "/probe");
    GTEST_SKIP() << "the child can write into a 0755 folder it does not own: no read-only folder "
                    "in this sandbox";
  }
  const int code =
      run_child("init-model --model-config " + config + " --out " + model + " --seed 2 --force",
                RLIM_INFINITY, true, err, dir);
  EXPECT_EQ(code, 1) << err;
  EXPECT_NE(err.find(model + "/"), std::string::npos) << err;  // names the file
  EXPECT_NE(err.find("Permission denied"), std::string::npos) << err;
  EXPECT_EQ(testing::lines_of(err).size(), 1u) << err;
  EXPECT_EQ(snapshot(model), before);  // same files, same bytes, nothing added
  // A new folder under a read-only one: refused, nothing created.
  const int nested =
      run_child("init-model --model-config " + config + " --out " + model + "/sub --seed 2",
                RLIM_INFINITY, true, err, dir);
  EXPECT_EQ(nested, 1) << err;
  EXPECT_NE(err.find(model + "/sub"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(model + "/sub"));
}

// One fault of tests/cli/fault_preload: `kind` "enospc" (a full disk) or "erofs" (a read-only
// file system), for the paths containing `path`, after `skip` such files went through.
struct Fault {
  std::string kind;
  std::string path;
  int skip = 0;
};

// The words of the C library's strerror for the fault.
std::string words_of(const Fault& f) {
  return f.kind == "enospc" ? "No space left on device" : "Read-only file system";
}

// Runs `compacter ARGS` with the fault; returns the exit code, stderr in `err`. Fails the test
// when the fault never happened (the log the library writes is empty).
int run_with_fault(const std::string& args, const Fault& f, std::string& err, const TempDir& tmp) {
  const std::string log = tmp.file("fault.log");
  fs::remove(log);
  const std::string env = std::string("LD_PRELOAD='") + COMPACTER_FAULT_PRELOAD +
                          "' COMPACTER_FAULT=" + f.kind + " COMPACTER_FAULT_PATH='" + f.path +
                          "' COMPACTER_FAULT_SKIP=" + std::to_string(f.skip) +
                          " COMPACTER_FAULT_AFTER_BYTES=64 COMPACTER_FAULT_LOG='" + log + "' ";
  const int code = run_child(args, RLIM_INFINITY, false, err, tmp, env);
  EXPECT_TRUE(fs::exists(log) && !read_file(log).empty())
      << "the fault on " << f.path << " never happened: " << err;
  return code;
}

// What an interrupted write may leave: NAME.tmp-*, NAME.new, NAME.old (files or folders).
std::vector<std::string> leftovers(const std::string& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.find(".tmp") != std::string::npos ||
        (name.size() > 4 &&
         (name.substr(name.size() - 4) == ".new" || name.substr(name.size() - 4) == ".old")))
      out.push_back(fs::relative(e.path(), dir).string());
  }
  return out;
}

// `train` of LoRA on 8 RTE rows of the tiny T5 with T5's vocabulary: 2 steps, a checkpoint after
// each, one evaluation at the end (~3 s).
std::string train_args(const std::string& model, const std::string& run) {
  return "train --model " + model + " --tokenizer " +
         testing::shared_path("data/t5-tokenizer/spiece.model") + " --task rte --data-dir " +
         testing::shared_path("data/glue/RTE") +
         " --method lora --max-train-samples 8 --max-steps 2 --batch-size 4 --save-steps 1"
         " --eval-steps 1000 --max-new-tokens 2 --out " +
         run;
}

class FaultInRun : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_SHARED("data/glue/RTE/train.tsv");
    REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
    model_ = dir_.path() + "/model";
    const auto init = testing::init_tiny_t5_with_t5_vocabulary(model_);
    ASSERT_EQ(init.exit_code, 0) << init.err;
  }

  // The fault on run/TARGET (skipping `skip` files) stops the run with one clear error naming
  // `names`; nothing half-written stays; `check` looks at what stayed; then --resume finishes it.
  // The runs are dir_/run-enospc and dir_/run-erofs.
  void fault_then_resume(const std::string& target, int skip, const std::string& names,
                         const std::function<void(const std::string& run)>& check) {
    for (const char* kind : {"enospc", "erofs"}) {
      SCOPED_TRACE(kind);
      const std::string run = dir_.path() + "/run-" + kind;
      const Fault f{kind, run + "/" + target, skip};
      std::string err;
      EXPECT_EQ(run_with_fault(train_args(model_, run), f, err, dir_), 1) << err;
      const std::string last = testing::lines_of(err).empty() ? "" : testing::lines_of(err).back();
      EXPECT_NE(last.find(names), std::string::npos) << err;
      EXPECT_NE(last.find(words_of(f)), std::string::npos) << err;
      EXPECT_EQ(leftovers(run), std::vector<std::string>{});
      check(run);
      const auto resumed = testing::run_compacter(train_args(model_, run) + " --resume");
      EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
      EXPECT_TRUE(fs::exists(run + "/best_adapter/adapter_model.safetensors"));
      EXPECT_NO_THROW(nlohmann::json::parse(read_file(run + "/results.json")).at("metrics"));
      EXPECT_EQ(leftovers(run), std::vector<std::string>{});
    }
  }

  TempDir dir_;
  std::string model_;
};

TEST_F(FaultInRun, SavingTheAdapterStopsCleanlyAndResumes) {
  fault_then_resume("best_adapter", 0, "best_adapter", [](const std::string& run) {
    EXPECT_FALSE(fs::exists(run + "/best_adapter"));
    EXPECT_FALSE(fs::exists(run + "/results.json"));
    EXPECT_TRUE(fs::exists(run + "/checkpoint/state.json"));  // what came before stays
  });
}

TEST_F(FaultInRun, WritingResultsStopsCleanlyAndResumes) {
  fault_then_resume("results.json", 0, "results.json", [](const std::string& run) {
    EXPECT_FALSE(fs::exists(run + "/results.json"));
    EXPECT_TRUE(fs::exists(run + "/best_adapter/adapter_model.safetensors"));
  });
}

// The second checkpoint fails: the first stays whole (step 1, its checksum intact: --resume reads
// it), and the resumed run ends with the adapter of a run never interrupted, byte for byte.
TEST_F(FaultInRun, SavingACheckpointKeepsThePreviousOneAndResumesToTheSameAdapter) {
  const std::string clean = dir_.path() + "/clean";
  const auto r = testing::run_compacter(train_args(model_, clean));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string expected = read_file(clean + "/best_adapter/adapter_model.safetensors");
  fault_then_resume("checkpoint.new/state.json", 1, "state.json", [](const std::string& run) {
    const auto state = nlohmann::json::parse(read_file(run + "/checkpoint/state.json"));
    EXPECT_EQ(state.at("step"), 1);
    EXPECT_FALSE(fs::exists(run + "/best_adapter"));
  });
  for (const char* kind : {"enospc", "erofs"})
    EXPECT_EQ(read_file(dir_.path() + "/run-" + kind + "/best_adapter/adapter_model.safetensors"),
              expected)
        << kind;
}

// convert: the model's bytes cannot be written (a full disk) or the folder cannot be made (a
// read-only file system): one error, no output folder, nothing left in the parent.
TEST(FaultInjection, ConvertOnAFullDiskOrReadOnlyFolderLeavesNothing) {
  REQUIRE_SHARED("data/tiny-t5-bin/pytorch_model.bin");
  for (const char* kind : {"enospc", "erofs"}) {
    SCOPED_TRACE(kind);
    TempDir tmp;  // the program's stdout and stderr
    TempDir parent;
    const std::string out = parent.path() + "/converted";
    const Fault f{kind, parent.path() + "/."};  // convert writes into parent/.converted.tmp-*
    std::string err;
    EXPECT_EQ(run_with_fault(
                  "convert --model " + testing::shared_path("data/tiny-t5-bin") + " --out " + out,
                  f, err, tmp),
              1)
        << err;
    EXPECT_NE(err.find(words_of(f)), std::string::npos) << err;
    EXPECT_NE(err.find(parent.path() + "/"), std::string::npos) << err;  // names the file
    EXPECT_EQ(testing::lines_of(err).size(), 1u) << err;
    EXPECT_FALSE(fs::exists(out));
    EXPECT_TRUE(fs::is_empty(parent.path()));
  }
}

}  // namespace
}  // namespace compacter

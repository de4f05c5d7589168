// `compacter train` interrupted at any moment (issue #7 point 5): killed with SIGKILL at marked
// moments (after a training step, during an evaluation, during the final scoring of the best
// adapter) or stopped with Ctrl-C during the final scoring, then finished with --resume, it gives
// the same results.json (timings aside), metrics.jsonl and adapter as an uninterrupted run.
// Also: inputs are checked before anything is written, and --resume names a changed setting.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/test_support.h"

namespace compacter {
namespace {

namespace fs = std::filesystem;

class TrainInterrupt : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    auto r = testing::init_tiny_t5_with_t5_vocabulary(dir_->path() + "/model");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }

  // 24 examples in batches of 8: 3 steps per epoch; 5 steps span two epochs; evaluation every
  // 2 steps; a checkpoint at evaluations and epoch ends only, so a resume replays steps.
  // Generations stop at 4 tokens (RTE's 19 would make every evaluation ~4x longer).
  static std::string args(const std::string& out) {
    return "train --model " + dir_->path() + "/model --tokenizer " +
           testing::shared_path("data/t5-tokenizer/spiece.model") + " --task rte --data-dir " +
           testing::shared_path("data/glue/RTE") +
           " --method compacter++ --max-train-samples 24 --max-steps 5 --batch-size 8"
           " --eval-batch-size 16 --eval-steps 2 --warmup-steps 1 --learning-rate 3e-3"
           " --log-steps 1 --reduction-factor 4 --n 2 --max-new-tokens 4 --out " +
           out;
  }

  // Starts `compacter args` with stderr to a file, waits until that file contains `marker`, then
  // sends `sig`; returns the exit status (a signal when it was killed).
  static int run_until(const std::string& arguments, const std::string& marker, int sig) {
    const std::string err = dir_->path() + "/child.err";
    fs::remove(err);
    const pid_t pid = fork();
    if (pid == 0) {
      const std::string cmd = std::string("exec '") + COMPACTER_BINARY + "' " + arguments +
                              " >/dev/null 2>'" + err + "'";
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    bool sent = false;
    for (int waited = 0; waited < 120000; waited += 5) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) return status;  // ended before the marker
      std::ifstream in(err);
      std::stringstream text;
      text << in.rdbuf();
      if (!sent && text.str().find(marker) != std::string::npos) {
        kill(pid, sig);
        sent = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ADD_FAILURE() << "the child did not end within 2 minutes";
    return status;
  }

  // `arguments` with the value after `flag` replaced.
  static std::string with(std::string arguments, const std::string& flag,
                          const std::string& value) {
    const size_t at = arguments.find(flag + " ");
    EXPECT_NE(at, std::string::npos) << flag;
    const size_t start = at + flag.size() + 1;
    const size_t end = arguments.find(' ', start);
    return arguments.replace(start, end == std::string::npos ? std::string::npos : end - start,
                             value);
  }

  static nlohmann::json results_without_timings(const std::string& run) {
    auto j = nlohmann::json::parse(testing::read_file(run + "/results.json"));
    j.erase("time");
    j.erase("peak_memory_bytes");
    return j;
  }
  static std::vector<nlohmann::json> records(const std::string& run) {
    std::vector<nlohmann::json> out;
    std::istringstream in(testing::read_file(run + "/metrics.jsonl"));
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      j.erase("elapsed_seconds");
      j.erase("examples_per_second");
      out.push_back(j);
    }
    return out;
  }
  static void expect_same_run(const std::string& expected, const std::string& actual) {
    EXPECT_EQ(results_without_timings(actual), results_without_timings(expected));
    EXPECT_EQ(records(actual), records(expected));
    for (const char* f : {"best_adapter/adapter_model.safetensors", "predictions_validation.jsonl",
                          "predictions_test.jsonl"})
      EXPECT_EQ(testing::read_file(actual + "/" + f), testing::read_file(expected + "/" + f)) << f;
    // The adapter's record and card: the same but for the command that made them (another --out,
    // and --resume).
    auto config = [](const std::string& run) {
      auto j = nlohmann::json::parse(testing::read_file(run + "/best_adapter/adapter_config.json"));
      j.erase("command");
      return j;
    };
    EXPECT_EQ(config(actual), config(expected));
    auto card = [](const std::string& run) {
      std::string kept;
      for (const std::string& line :
           testing::lines_of(testing::read_file(run + "/best_adapter/README.md")))
        if (line.rfind("| made by |", 0) != 0) kept += line + "\n";
      return kept;
    };
    EXPECT_EQ(card(actual), card(expected));
    EXPECT_FALSE(fs::exists(actual + "/checkpoint"));
  }

  static testing::TempDir* dir_;
};
testing::TempDir* TrainInterrupt::dir_ = nullptr;

TEST_F(TrainInterrupt, KilledAnywhereThenResumedGivesTheUninterruptedRun) {
  REQUIRE_SHARED("data/glue/RTE/train.tsv");
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const std::string straight = dir_->path() + "/straight";
  auto r = testing::run_compacter(args(straight));
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const std::vector<std::pair<std::string, int>> moments = {
      {"[train] step      1/5", SIGKILL},                   // before any checkpoint
      {"evaluating at step 2", SIGKILL},                    // during an evaluation
      {"[train] step      5/5", SIGKILL},                   // after the last step
      {"scoring the best adapter on validation", SIGKILL},  // the final scoring
      {"scoring the best adapter on test", SIGINT},         // Ctrl-C in the final scoring
  };
  int index = 0;
  for (const auto& [marker, sig] : moments) {
    SCOPED_TRACE(marker);
    const std::string run = dir_->path() + "/run" + std::to_string(index++);
    const int status = run_until(args(run), marker, sig);
    if (sig == SIGINT) {
      ASSERT_TRUE(WIFEXITED(status)) << "Ctrl-C must end the run cleanly";
      EXPECT_EQ(WEXITSTATUS(status), 130);
    } else {
      EXPECT_TRUE(WIFSIGNALED(status)) << "the run ended before the marker";
    }
    EXPECT_FALSE(fs::exists(run + "/results.json"));
    // A plain rerun must not start again over the unfinished run.
    auto again = testing::run_compacter(args(run));
    EXPECT_EQ(again.exit_code, 2);
    EXPECT_NE(again.err.find("--resume"), std::string::npos) << again.err;
    auto resumed = testing::run_compacter(args(run) + " --resume");
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    expect_same_run(straight, run);
  }
}

TEST_F(TrainInterrupt, InputsAreCheckedBeforeAnythingIsWritten) {
  REQUIRE_SHARED("data/glue/RTE/train.tsv");
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const std::string run = dir_->path() + "/nothing";
  auto r = testing::run_compacter(with(args(run), "--model", dir_->path() + "/no-such-model"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("model folder not found: " + dir_->path() + "/no-such-model"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(run));
  auto bad_data = testing::run_compacter(with(args(run), "--data-dir", dir_->path()));
  EXPECT_NE(bad_data.exit_code, 0);
  EXPECT_FALSE(fs::exists(run)) << bad_data.err;
}

TEST_F(TrainInterrupt, ResumeNamesAChangedSettingAndAcceptsAnEquivalentPath) {
  REQUIRE_SHARED("data/glue/RTE/train.tsv");
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const std::string run = dir_->path() + "/changed";
  const int status = run_until(args(run), "[train] step      3/5", SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(status));
  auto changed = testing::run_compacter(with(args(run), "--learning-rate", "1e-3") + " --resume");
  EXPECT_EQ(changed.exit_code, 2);
  EXPECT_NE(changed.err.find("training.learning_rate: the run started with 0.003, now 0.001"),
            std::string::npos)
      << changed.err;
  // The same vocabulary in another file is another setting (the run cannot know they agree).
  fs::copy_file(testing::shared_path("data/t5-tokenizer/spiece.model"),
                dir_->path() + "/copy.model", fs::copy_options::overwrite_existing);
  auto tokenizer = testing::run_compacter(
      with(args(run), "--tokenizer", dir_->path() + "/copy.model") + " --resume");
  EXPECT_EQ(tokenizer.exit_code, 2);
  EXPECT_NE(tokenizer.err.find("tokenizer: the run started with"), std::string::npos)
      << tokenizer.err;
  // The same data folder written with a trailing slash is the same setting.
  auto slash = testing::run_compacter(
      with(args(run), "--data-dir", testing::shared_path("data/glue/RTE") + "/") + " --resume");
  EXPECT_EQ(slash.exit_code, 0) << slash.err;
}

}  // namespace
}  // namespace compacter

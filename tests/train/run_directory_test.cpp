// Run directories (train/run_directory.h): the states a folder can be in and what each mode
// accepts, the effective-config comparison of --resume, and the repair of a directory swap that
// a crash cut short. Expected values are written out by hand.
#include "compacter/train/run_directory.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "compacter/core/error.h"
#include "support/test_support.h"

namespace compacter::train {
namespace {

namespace fs = std::filesystem;

TEST(RunDirectory, ConfigDifferenceNamesTheSettingAndBothValues) {
  const nlohmann::json a = {{"model", "m"}, {"training", {{"learning_rate", 0.003}}}};
  nlohmann::json b = a;
  EXPECT_EQ(first_config_difference(a, b, {}), "");
  b["training"]["learning_rate"] = 0.001;
  EXPECT_EQ(first_config_difference(a, b, {}),
            "training.learning_rate: the run started with 0.003, now 0.001");
  nlohmann::json c = a;
  c["tokenizer"] = "x.model";
  EXPECT_EQ(first_config_difference(a, c, {}),
            "tokenizer: the run started with (absent), now \"x.model\"");
  EXPECT_EQ(first_config_difference(c, a, {}),
            "tokenizer: the run started with \"x.model\", now (absent)");
}

TEST(RunDirectory, EquivalentPathsAreNoDifference) {
  testing::TempDir dir;
  fs::create_directories(dir.file("data"));
  const nlohmann::json a = {{"data_dir", dir.file("data")}, {"model", "m"}};
  const nlohmann::json b = {{"data_dir", dir.file("data") + "/"}, {"model", "m"}};
  const nlohmann::json c = {{"data_dir", dir.path() + "/./data//"}, {"model", "m"}};
  EXPECT_EQ(first_config_difference(a, b, {"data_dir"}), "");
  EXPECT_EQ(first_config_difference(a, c, {"data_dir"}), "");
  // Only the settings named as paths are compared as paths.
  EXPECT_NE(first_config_difference(a, b, {}), "");
  const nlohmann::json other = {{"data_dir", dir.file("other")}, {"model", "m"}};
  EXPECT_NE(first_config_difference(a, other, {"data_dir"}), "");
}

TEST(RunDirectory, StatesAndModes) {
  testing::TempDir dir;
  const std::string run = dir.file("run");
  const RunLayout layout = finetune_layout();
  const nlohmann::json config = {{"model", "m"}};
  // Fresh (absent): new and overwrite are fine, resume is not.
  EXPECT_NO_THROW(RunDirectory::check_usable(run, layout, RunMode::kNew));
  EXPECT_THROW(RunDirectory::check_usable(run, layout, RunMode::kResume), UsageError);
  RunDirectory opened = RunDirectory::open(run, layout, RunMode::kNew, config);
  EXPECT_FALSE(opened.resuming());
  EXPECT_EQ(nlohmann::json::parse(testing::read_file(run + "/run_config.json")), config);

  // Unfinished (a config, no results; even without a checkpoint): new is refused.
  try {
    RunDirectory::check_usable(run, layout, RunMode::kNew);
    ADD_FAILURE() << "an unfinished run was not refused";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("an unfinished run"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--resume"), std::string::npos) << e.what();
  }
  RunDirectory resumed = RunDirectory::open(run, layout, RunMode::kResume, config);
  EXPECT_TRUE(resumed.resuming());
  EXPECT_FALSE(resumed.has_checkpoint());
  nlohmann::json changed = config;
  changed["model"] = "other";
  try {
    RunDirectory::open(run, layout, RunMode::kResume, changed);
    ADD_FAILURE() << "a changed setting was not refused";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("model: the run started with \"m\", now \"other\""),
              std::string::npos)
        << e.what();
  }

  // Finished: new and resume are refused; overwrite removes the run's files only.
  testing::write_file(run + "/results.json", "{}");
  testing::write_file(run + "/notes.txt", "mine");
  EXPECT_THROW(RunDirectory::check_usable(run, layout, RunMode::kNew), UsageError);
  EXPECT_THROW(RunDirectory::check_usable(run, layout, RunMode::kResume), UsageError);
  RunDirectory::open(run, layout, RunMode::kOverwrite, config);
  EXPECT_FALSE(fs::exists(run + "/results.json"));
  EXPECT_TRUE(fs::exists(run + "/notes.txt"));
}

TEST(RunDirectory, ResumeMovesBackADirectoryACrashLeftAsOld) {
  testing::TempDir dir;
  const std::string run = dir.file("run");
  const RunLayout layout = finetune_layout();
  RunDirectory::open(run, layout, RunMode::kNew, {{"model", "m"}});
  // A crash between the two renames of replace_directory: only NAME.old and NAME.new exist.
  fs::create_directories(run + "/checkpoint.old");
  testing::write_file(run + "/checkpoint.old/state.json", "{}");
  fs::create_directories(run + "/best_adapter.old");
  fs::create_directories(run + "/best_adapter.new");
  RunDirectory r = RunDirectory::open(run, layout, RunMode::kResume, {{"model", "m"}});
  EXPECT_TRUE(fs::exists(run + "/checkpoint/state.json"));
  EXPECT_TRUE(fs::is_directory(run + "/best_adapter"));
  EXPECT_FALSE(fs::exists(run + "/best_adapter.new"));
  EXPECT_TRUE(r.has_checkpoint());
}

}  // namespace
}  // namespace compacter::train

// The traps of a newcomer's first hour (issue #15): empty inputs to `predict` get an error each
// (the outputs stay aligned, the exit status is 1), a forgotten pair of quotes is refused, a wrong
// --model is reported as such, a run directory given as an adapter gets a hint, and
// `train --init-seed` decides the method's initialisation.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>

#include "support/test_support.h"

namespace compacter {
namespace {

class NewcomerCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    auto r = testing::init_tiny_t5_with_t5_vocabulary(dir_->path() + "/model");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    if (testing::shared_exists("data/t5-tokenizer/spiece.model"))
      std::filesystem::copy_file(testing::shared_path("data/t5-tokenizer/spiece.model"),
                                 dir_->path() + "/model/spiece.model");
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string model() { return " --model " + dir_->path() + "/model"; }
  static testing::TempDir* dir_;
};
testing::TempDir* NewcomerCli::dir_ = nullptr;

using testing::lines_of;

TEST_F(NewcomerCli, EmptyInputsGetAnErrorEachAndTheOutputStaysAligned) {
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const auto r = testing::run_compacter("predict" + model(), "one\n\n  \ntwo\n");
  EXPECT_EQ(r.exit_code, 1);
  const auto out = lines_of(r.out);
  ASSERT_EQ(out.size(), 4u) << r.out;
  EXPECT_FALSE(out[0].empty());
  EXPECT_EQ(out[1], "");
  EXPECT_EQ(out[2], "");
  EXPECT_FALSE(out[3].empty());
  // The same input alone gives the same output (the others were still answered).
  const auto alone = testing::run_compacter("predict" + model() + " --text two");
  EXPECT_EQ(lines_of(alone.out), std::vector<std::string>{out[3]});
  EXPECT_NE(r.err.find("line 2: the input is empty"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("line 3: the input is empty"), std::string::npos) << r.err;
  const auto flag = testing::run_compacter("predict" + model() + " --text ''");
  EXPECT_EQ(flag.exit_code, 1);
  EXPECT_NE(flag.err.find("--text 1: the input is empty"), std::string::npos) << flag.err;
}

TEST_F(NewcomerCli, AForgottenPairOfQuotesIsRefused) {
  const auto r = testing::run_compacter("predict" + model() + " --text a tool for driving nails");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("needs quotes"), std::string::npos) << r.err;
}

TEST_F(NewcomerCli, AWrongModelFolderIsNamed) {
  const auto r = testing::run_compacter("predict --model " + dir_->path() + "/nope --text hi");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("model folder not found: " + dir_->path() + "/nope"), std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("spiece.model"), std::string::npos) << r.err;
}

TEST_F(NewcomerCli, ARunDirectoryAsAdapterGetsAHintAndInitSeedIsHonoured) {
  REQUIRE_SHARED("data/glue/RTE/train.tsv");
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const std::string run = dir_->path() + "/run";
  auto r = testing::run_compacter(
      "train" + model() + " --task rte --data-dir " + testing::shared_path("data/glue/RTE") +
      " --method compacter++ --max-train-samples 8 --max-steps 1 --batch-size 8"
      " --eval-batch-size 70 --reduction-factor 4 --n 2 --seed 5 --init-seed 77 --out " +
      run);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto adapter =
      nlohmann::json::parse(testing::read_file(run + "/best_adapter/adapter_config.json"));
  EXPECT_EQ(adapter["seed"], 77);
  const auto config = nlohmann::json::parse(testing::read_file(run + "/run_config.json"));
  EXPECT_EQ(config["init_seed"], 77);
  EXPECT_EQ(config["training"]["seed"], 5);

  const auto p = testing::run_compacter("predict" + model() + " --adapter " + run + " --text hi");
  EXPECT_EQ(p.exit_code, 1);
  EXPECT_NE(p.err.find("did you mean " + run + "/best_adapter"), std::string::npos) << p.err;
}

}  // namespace
}  // namespace compacter

// `compacter train` / `eval` end to end (issue #5): every method trains on real RTE files with a
// tiny random T5 of T5's vocabulary, keeps its best adapter, and `compacter eval` on the reloaded
// adapter reproduces the test scores of results.json (one test per method, so that CTest runs
// them in parallel and a failure names the method); run directories are protected.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "compacter/peft/methods.h"
#include "support/test_support.h"

namespace compacter {
namespace {

// Generations of 4 tokens instead of RTE's 19 (a random model never writes </s>): the evaluations
// that train and eval must agree on cost a quarter, and "not_entailment" is still 5 tokens long.
const std::string kMaxNewTokens = " --max-new-tokens 4";

// Parameterised by method name for the every-method test; the other tests use it as a plain
// fixture.
class TrainCli : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    auto r = testing::init_tiny_t5_with_t5_vocabulary(dir_->path() + "/model");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string train_args(const std::string& method, const std::string& out) {
    return "train --model " + dir_->path() + "/model --tokenizer " +
           testing::shared_path("data/t5-tokenizer/spiece.model") + " --task rte --data-dir " +
           testing::shared_path("data/glue/RTE") + " --method " + method +
           " --max-train-samples 24 --max-steps 3 --batch-size 8 --eval-batch-size 70"
           " --warmup-steps 1 --learning-rate 3e-3 --log-steps 1 --reduction-factor 4 --n 2"
           " --prompt-length 4 --intrinsic-dim 3000 --adapterdrop-layers 0" +
           kMaxNewTokens + " --out " + out;
  }
  static testing::TempDir* dir_;
};
testing::TempDir* TrainCli::dir_ = nullptr;

TEST_P(TrainCli, EveryMethodTrainsAndItsAdapterReloadsWithTheSameScores) {
  REQUIRE_SHARED("data/glue/RTE/train.tsv");
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const std::string method = GetParam();
  const std::string run = dir_->path() + "/run-" + method;
  auto r = testing::run_compacter(train_args(method, run));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("[train] step      3/3"), std::string::npos) << r.err;
  const auto results = nlohmann::json::parse(testing::read_file(run + "/results.json"));
  EXPECT_EQ(results["method"], method);
  EXPECT_EQ(results["steps"], 3);
  const auto& test = results["metrics"]["test"];
  ASSERT_TRUE(test.contains("accuracy")) << results.dump();
  // RTE's paper test split: 139 examples (spec §4.1); an accuracy is a count / 139.
  const double correct = test["accuracy"].get<double>() * 139 / 100;
  EXPECT_NEAR(correct, std::round(correct), 1e-6);
  EXPECT_GT(results["parameters"]["trainable"].get<int64_t>(), 0);
  EXPECT_TRUE(std::filesystem::exists(run + "/metrics.jsonl"));
  // The kernels it ran on (README "Kernels at start-up"): in the log and in results.json.
  const std::string kernels = results["machine"]["kernels"]["line"].get<std::string>();
  EXPECT_EQ(kernels.rfind("kernels: ", 0), 0u) << results.dump();
  EXPECT_NE(r.err.find(kernels), std::string::npos) << r.err;

  auto e = testing::run_compacter(
      "eval --model " + dir_->path() + "/model --tokenizer " +
      testing::shared_path("data/t5-tokenizer/spiece.model") + " --task rte --data-dir " +
      testing::shared_path("data/glue/RTE") + " --split test --adapter " + run +
      "/best_adapter --predictions-out " + run + "/again.jsonl" + kMaxNewTokens);
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const auto scored = nlohmann::json::parse(e.out);
  EXPECT_EQ(scored["metrics"], test);
  EXPECT_EQ(testing::read_file(run + "/again.jsonl"),
            testing::read_file(run + "/predictions_test.jsonl"));
}

INSTANTIATE_TEST_SUITE_P(Method, TrainCli, ::testing::ValuesIn(testing::all_method_names()),
                         testing::method_test_name);

TEST_F(TrainCli, RunDirectoriesAreProtected) {
  REQUIRE_SHARED("data/glue/RTE/train.tsv");
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const std::string run = dir_->path() + "/protected";
  ASSERT_EQ(testing::run_compacter(train_args("bitfit", run)).exit_code, 0);
  const std::string before = testing::read_file(run + "/results.json");
  auto again = testing::run_compacter(train_args("bitfit", run));
  EXPECT_EQ(again.exit_code, 2);  // bad usage: --overwrite is needed
  EXPECT_NE(again.err.find("already holds a finished run"), std::string::npos) << again.err;
  EXPECT_EQ(testing::read_file(run + "/results.json"), before);
  auto resume = testing::run_compacter(train_args("bitfit", run) + " --resume");
  EXPECT_EQ(resume.exit_code, 2);
  EXPECT_NE(resume.err.find("holds a finished run"), std::string::npos) << resume.err;
  auto unknown = testing::run_compacter(train_args("nosuch", dir_->path() + "/nosuch"));
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown method \"nosuch\""), std::string::npos) << unknown.err;
  EXPECT_FALSE(std::filesystem::exists(dir_->path() + "/nosuch"));
  testing::write_file(dir_->path() + "/bad.json", R"({"method": "bitfit", "trainig": {}})");
  auto bad = testing::run_compacter(train_args("bitfit", dir_->path() + "/bad") + " --config " +
                                    dir_->path() + "/bad.json");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("unknown key \"trainig\""), std::string::npos) << bad.err;
}

// --low-resource (spec §4.6): the paper's epochs for the train size, batch 40, evaluation and
// checkpoint every 250 steps; explicit flags still win; sizes outside the paper's table are
// refused.
TEST_F(TrainCli, LowResourceProtocol) {
  REQUIRE_SHARED("data/glue/RTE/train.tsv");
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const std::string base = "train --model " + dir_->path() + "/model --tokenizer " +
                           testing::shared_path("data/t5-tokenizer/spiece.model") +
                           " --task rte --data-dir " + testing::shared_path("data/glue/RTE") +
                           " --method bitfit --warmup-steps 0 --log-steps 1 --eval-batch-size 70" +
                           kMaxNewTokens;
  const std::string run = dir_->path() + "/low";
  auto r = testing::run_compacter(base + " --low-resource --max-train-samples 100 --max-steps 2" +
                                  " --out " + run);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto config = nlohmann::json::parse(testing::read_file(run + "/run_config.json"));
  const auto& t = config["training"];
  EXPECT_EQ(t["epochs"], 1000);  // 100 examples -> 1000 epochs (paper §5.6)
  EXPECT_EQ(t["batch_size"], 40);
  EXPECT_EQ(t["eval_steps"], 250);
  EXPECT_EQ(t["save_steps"], 250);
  EXPECT_EQ(t["max_steps"], 2);  // the flag
  EXPECT_EQ(config["data"]["max_train_samples"], 100);

  auto odd = testing::run_compacter(base + " --low-resource --max-train-samples 300 --out " +
                                    dir_->path() + "/odd");
  EXPECT_EQ(odd.exit_code, 2);
  EXPECT_NE(odd.err.find("no low-resource epoch count for 300"), std::string::npos) << odd.err;
  auto none = testing::run_compacter(base + " --low-resource --out " + dir_->path() + "/none");
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("--low-resource needs --max-train-samples"), std::string::npos)
      << none.err;
  EXPECT_FALSE(std::filesystem::exists(dir_->path() + "/none"));
  EXPECT_FALSE(std::filesystem::exists(dir_->path() + "/odd"));
}

}  // namespace
}  // namespace compacter

namespace compacter {
namespace {

// eval's decoding options on a trained adapter: --constrain-labels predicts one of RTE's label
// strings for every example (the paper's "0" / "1"), beam search runs through the same
// evaluation, and a task without a label set is refused.
TEST_F(TrainCli, EvalDecodingOptions) {
  REQUIRE_SHARED("data/glue/RTE/train.tsv");
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const std::string run = dir_->path() + "/run-decoding";
  auto r = testing::run_compacter(train_args("bitfit", run));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string eval = "eval --model " + dir_->path() + "/model --tokenizer " +
                           testing::shared_path("data/t5-tokenizer/spiece.model") +
                           " --task rte --data-dir " + testing::shared_path("data/glue/RTE") +
                           " --split test --adapter " + run + "/best_adapter" + kMaxNewTokens + " ";
  auto e =
      testing::run_compacter(eval + "--constrain-labels --predictions-out " + run + "/c.jsonl");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const auto lines = testing::lines_of(testing::read_file(run + "/c.jsonl"));
  ASSERT_EQ(lines.size(), 139u);
  for (const std::string& line : lines) {
    const std::string p = nlohmann::json::parse(line)["prediction"];
    EXPECT_TRUE(p == "0" || p == "1") << line;
  }
  // Always a label: the accuracy is a count of the 139 test examples, and not 0 with both labels
  // present in the split.
  const double accuracy = nlohmann::json::parse(e.out)["metrics"]["accuracy"].get<double>();
  EXPECT_GT(accuracy, 0.0);
  auto b = testing::run_compacter(eval + "--num-beams 2");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_TRUE(nlohmann::json::parse(b.out)["metrics"].contains("accuracy"));
  auto bad = testing::run_compacter(eval + "--num-beams 0");
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

}  // namespace
}  // namespace compacter

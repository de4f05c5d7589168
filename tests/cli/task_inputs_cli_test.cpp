// Adapters that know their base model and their task (issue "one inference path"): a trained
// adapter records both; `predict` and `serve` fed a task's own fields give exactly what `eval`
// predicted for the same rows (the fields formatted as training formatted them, the reference
// being eval's own reading of the official files); a 32,128-row T5's adapter works in `generate`
// and `forward`; another base of the same shape is refused unless allowed; `eval` warns about a
// task that is not the adapter's.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "compacter/io/safetensors.h"
#include "compacter/nn/int8_linear.h"
#include "support/test_support.h"

namespace compacter::task_inputs_cli_test {
namespace {

using nlohmann::json;
using testing::lines_of;

class TaskInputsCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::shared_exists("data/glue/RTE/dev.tsv") ||
        !testing::shared_exists("data/t5-tokenizer/spiece.model"))
      return;
    dir_ = new testing::TempDir();
    auto r = testing::init_tiny_t5_with_t5_vocabulary(model_dir());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::filesystem::copy_file(testing::shared_path("data/t5-tokenizer/spiece.model"),
                               model_dir() + "/spiece.model");
    r = testing::run_compacter(
        "train --model " + model_dir() + " --task rte --data-dir " +
        testing::shared_path("data/glue/RTE") +
        " --method compacter++ --reduction-factor 4 --n 2 --max-train-samples 16"
        " --max-steps 2 --batch-size 8 --warmup-steps 0 --learning-rate 0.3 --eval-batch-size 100"
        " --max-new-tokens 4 --out " +
        run_dir());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string model_dir() { return dir_->path() + "/model"; }
  static std::string run_dir() { return dir_->path() + "/run"; }
  static std::string adapter() { return run_dir() + "/best_adapter"; }
  static testing::TempDir* dir_;
};
testing::TempDir* TaskInputsCli::dir_ = nullptr;

#define REQUIRE_DATA()                              \
  REQUIRE_SHARED("data/glue/RTE/dev.tsv");          \
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model"); \
  ASSERT_NE(dir_, nullptr)

// RTE's dev.tsv rows (index, sentence1, sentence2, label) as Hugging Face's field objects.
std::vector<json> rte_dev_fields() {
  std::ifstream in(testing::shared_path("data/glue/RTE/dev.tsv"));
  std::vector<json> rows;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream s(line);
    for (std::string cell; std::getline(s, cell, '\t');) cells.push_back(cell);
    if (cells.size() != 4) continue;
    rows.push_back({{"sentence1", cells[1]}, {"sentence2", cells[2]}});
  }
  return rows;
}

TEST_F(TaskInputsCli, TheAdapterRecordsItsBaseTaskAndInputsAndHasACard) {
  REQUIRE_DATA();
  std::ifstream in(adapter() + "/adapter_config.json");
  const json config = json::parse(in);
  EXPECT_EQ(config["task"], "rte");
  EXPECT_EQ(config["inputs"]["task"], "rte");
  EXPECT_EQ(config["inputs"]["add_prefix"], false);  // the adapter family: no prefix (§9 #5)
  EXPECT_EQ(config["base"]["name"], "model");
  EXPECT_EQ(config["base"]["weights_fingerprint"].get<std::string>().size(), 16u);
  EXPECT_NE(config["command"].get<std::string>().find("train --model"), std::string::npos);
  const std::string card = testing::read_file(adapter() + "/README.md");
  EXPECT_NE(card.find("compacter++ adapter for rte, on model"), std::string::npos) << card;
  EXPECT_NE(card.find("validation accuracy"), std::string::npos) << card;
  EXPECT_NE(card.find("{\"sentence1\":\"...\",\"sentence2\":\"...\"}"), std::string::npos) << card;
}

TEST_F(TaskInputsCli, PredictAndServeOnFieldsGiveEvalsPredictions) {
  REQUIRE_DATA();
  const std::string predictions = dir_->path() + "/eval.jsonl";
  auto r = testing::run_compacter(
      "eval --model " + model_dir() + " --adapter " + adapter() + " --task rte --data-dir " +
      testing::shared_path("data/glue/RTE") + " --official-splits --split validation" +
      " --max-new-tokens 4 --predictions-out " + predictions);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> want;
  for (const std::string& line : lines_of(testing::read_file(predictions)))
    want.push_back(json::parse(line)["prediction"].get<std::string>());
  const std::vector<json> rows = rte_dev_fields();
  ASSERT_EQ(want.size(), rows.size());

  std::string fields, requests;
  for (size_t i = 0; i < rows.size(); ++i) {
    fields += rows[i].dump() + "\n";
    json request = rows[i];
    request["id"] = i;
    requests += request.dump() + "\n";
  }
  r = testing::run_compacter(
      "predict --json --max-new-tokens 4 --model " + model_dir() + " --adapter " + adapter(),
      fields);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto predicted = lines_of(r.out);
  ASSERT_EQ(predicted.size(), want.size());
  r = testing::run_compacter(
      "serve --max-new-tokens 4 --model " + model_dir() + " --adapter rte=" + adapter(), requests);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto served = lines_of(r.out);
  ASSERT_EQ(served.size(), want.size());
  int64_t differ = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const json p = json::parse(predicted[i]), s = json::parse(served[i]);
    const bool same = p["output"] == want[i] && s["output"] == want[i] && s["id"] == i;
    differ += !same;
    if (!same)
      ADD_FAILURE() << "row " << i << ": eval " << want[i] << ", " << predicted[i] << ", "
                    << served[i];
    // The label word is the meaning of the output: RTE's "0" is "entailment".
    if (want[i] == "0") {
      EXPECT_EQ(p["label"], "entailment");
    }
    if (want[i] == "1") {
      EXPECT_EQ(s["label"], "not_entailment");
    }
  }
  EXPECT_EQ(differ, 0) << "of " << want.size();
}

// --int8-keep-fp32 names the layers int8 leaves fp32: an unknown name is bad usage (exit 2), named
// with the option, and nothing is written, as is a list other than the default with another
// dtype; a known list runs.
TEST_F(TaskInputsCli, Int8KeepFp32NamesKnownLayers) {
  REQUIRE_DATA();
  if (!nn::int8_available()) GTEST_SKIP() << "no int8 engine on this machine";
  const std::string predictions = dir_->path() + "/keep.jsonl";
  const std::string eval = "eval --dtype int8 --batch-size 8 --model " + model_dir() +
                           " --adapter " + adapter() + " --task rte --data-dir " +
                           testing::shared_path("data/glue/RTE") +
                           " --official-splits --split validation --max-new-tokens 2 "
                           "--predictions-out " +
                           predictions + " --int8-keep-fp32 ";
  auto r = testing::run_compacter(eval + "wo,lm-head");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--int8-keep-fp32"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\"lm-head\""), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(predictions));
  // Another dtype with a list other than the default: bad usage too.
  std::string fp32 = eval + "none";
  fp32.replace(fp32.find("--dtype int8"), 12, "--dtype fp32");
  r = testing::run_compacter(fp32);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("applies to --dtype int8 only"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(predictions));
  r = testing::run_compacter(eval + "wo,lm_head");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines_of(testing::read_file(predictions)).size(), rte_dev_fields().size());
}

// int8: `eval` quantises the model and frees the quantised layers' fp32 weights at once (its
// model is final); `predict` runs the server, which quantises the base, loads the adapter onto a
// model sharing the base's tensors and its int8 layers, and then frees them. Row by row (the
// fp32 parts of a step are not bit for bit the same in a batch and alone), both give the same
// prediction for every RTE validation row.
TEST_F(TaskInputsCli, EvalAndPredictAgreeInInt8) {
  REQUIRE_DATA();
  if (!nn::int8_available()) GTEST_SKIP() << "this libtorch has no int8 engine (oneDNN)";
  const std::string predictions = dir_->path() + "/eval-int8.jsonl";
  auto r = testing::run_compacter(
      "eval --dtype int8 --batch-size 1 --model " + model_dir() + " --adapter " + adapter() +
      " --task rte --data-dir " + testing::shared_path("data/glue/RTE") +
      " --official-splits --split validation --max-new-tokens 4 --predictions-out " + predictions);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> want;
  for (const std::string& line : lines_of(testing::read_file(predictions)))
    want.push_back(json::parse(line)["prediction"].get<std::string>());
  std::string fields;
  for (const json& row : rte_dev_fields()) fields += row.dump() + "\n";
  r = testing::run_compacter(
      "predict --dtype int8 --batch-size 1 --json --max-new-tokens 4 "
      "--model " +
          model_dir() + " --adapter " + adapter(),
      fields);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto predicted = lines_of(r.out);
  ASSERT_EQ(predicted.size(), want.size());
  int64_t differ = 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (json::parse(predicted[i])["output"] != want[i] && ++differ <= 3)
      ADD_FAILURE() << "row " << i << ": eval " << want[i] << ", predict " << predicted[i];
  EXPECT_EQ(differ, 0) << "of " << want.size();
}

TEST_F(TaskInputsCli, FieldsOfAnotherTaskAreOneClearErrorEach) {
  REQUIRE_DATA();
  auto r = testing::run_compacter("predict --model " + model_dir() + " --adapter " + adapter(),
                                  "{\"premise\": \"a\", \"hypothesis\": \"b\"}\n{\"sentence1\": "
                                  "\"a\", \"sentence2\": \"b\"}\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(lines_of(r.out).size(), 2u);
  EXPECT_NE(r.err.find("line 1: missing field \"sentence1\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rte takes the fields sentence1, sentence2"), std::string::npos) << r.err;
}

TEST_F(TaskInputsCli, AnotherBaseOfTheSameShapeIsRefusedUnlessAllowed) {
  REQUIRE_DATA();
  const std::string other = dir_->path() + "/other-seed5";
  // The test model's shape, other weights.
  auto r = testing::run_compacter("init-model --model-config " + model_dir() +
                                  "/config.json --out " + other + " --seed 5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string args = " --tokenizer " +
                           testing::shared_path("data/t5-tokenizer/spiece.model") + " --adapter " +
                           adapter() + " --text 'a b'";
  r = testing::run_compacter("predict --model " + other + args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(
      r.err.find("was trained on base model \"model\", not on the one given, \"other-seed5\""),
      std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("--allow-base-mismatch"), std::string::npos) << r.err;
  r = testing::run_compacter("predict --allow-base-mismatch --model " + other + args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("loading it anyway"), std::string::npos) << r.err;
}

TEST_F(TaskInputsCli, GenerateAndForwardTakeTheAdapterOfA32128RowModel) {
  REQUIRE_DATA();
  auto r = testing::run_compacter("generate --model " + model_dir() + " --adapter " + adapter() +
                                  " --text 'sentence1: a sentence2: b' --max-new-tokens 3");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out).size(), 1u);
  const std::string inputs = dir_->path() + "/inputs.safetensors";
  safetensors::save(inputs, {{"input_ids", torch::tensor({{5, 6, 1}}, torch::kLong)},
                             {"labels", torch::tensor({{7, 1}}, torch::kLong)}});
  r = testing::run_compacter("forward --model " + model_dir() + " --adapter " + adapter() +
                             " --inputs " + inputs + " --out " + dir_->path() + "/out.safetensors");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(TaskInputsCli, EvalWarnsAboutAnotherTask) {
  REQUIRE_DATA();
  REQUIRE_SHARED("data/superglue/CB/val.jsonl");
  auto r = testing::run_compacter(
      "eval --model " + model_dir() + " --adapter " + adapter() + " --task cb --data-dir " +
      testing::shared_path("data/superglue/CB") + " --split validation --max-new-tokens 2");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("was trained on task rte, not on cb"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace compacter::task_inputs_cli_test

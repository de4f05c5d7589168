// `compacter serve`: several adapters on one base model answer JSON Lines requests exactly as
// `compacter predict` answers with each adapter loaded on its own (a separate process, a model of
// its own); bad requests get an error line each and a non-zero exit; bad options are refused.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <sstream>

#include "compacter/nn/checkpoint.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "support/test_support.h"

namespace compacter {
namespace {

class ServeCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    auto r = testing::init_tiny_t5_with_t5_vocabulary(model_dir());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Adapters moved well away from their init, so that their outputs differ.
    torch::manual_seed(7);
    for (const std::string method : {"compacter++", "bitfit", "full", "prompt-r", "lora", "ia3"})
      testing::write_moved_adapter(model_dir(), method, adapter_dir(method));
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string model_dir() { return dir_->path() + "/model"; }
  static std::string adapter_dir(const std::string& method) {
    return dir_->path() + "/adapter-" + method;
  }
  static std::string common_args() {
    return "--model " + model_dir() + " --tokenizer " +
           testing::shared_path("data/t5-tokenizer/spiece.model") + " --max-new-tokens 7";
  }
  static testing::TempDir* dir_;
};
testing::TempDir* ServeCli::dir_ = nullptr;

using testing::lines_of;

TEST_F(ServeCli, AnswersAsPredictDoesWithEachAdapterAlone) {
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const std::vector<std::string> names = {"compacter++", "bitfit", "full", "prompt-r",
                                          "lora",        "ia3",    "base"};
  const std::vector<std::string> texts = {"rte sentence1: A cat sat. sentence2: A cat is sitting.",
                                          "sst2 sentence: a gripping film",
                                          "cola sentence: The more books.", "hello world"};
  std::string serve_args = "serve " + common_args() + " --batch-size 3";
  for (size_t a = 0; a + 1 < names.size(); ++a)
    serve_args += " --adapter " + names[a] + "=" + adapter_dir(names[a]);
  // Interleaved: every batch of 3 mixes adapters; ids are echoed.
  std::string requests;
  for (size_t t = 0; t < texts.size(); ++t)
    for (const auto& name : names)
      requests +=
          nlohmann::json{
              {"adapter", name}, {"text", texts[t]}, {"id", name + "/" + std::to_string(t)}}
              .dump() +
          "\n";
  auto r = testing::run_compacter(serve_args, requests);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto replies = lines_of(r.out);
  ASSERT_EQ(replies.size(), texts.size() * names.size()) << r.out;

  std::map<std::string, std::vector<std::string>> expected;
  std::string stdin_text;
  for (const auto& t : texts) stdin_text += t + "\n";
  for (const auto& name : names) {
    auto p = testing::run_compacter("predict " + common_args() + " --batch-size 1" +
                                        (name == "base" ? "" : " --adapter " + adapter_dir(name)),
                                    stdin_text);
    ASSERT_EQ(p.exit_code, 0) << p.err;
    expected[name] = lines_of(p.out);
    ASSERT_EQ(expected[name].size(), texts.size()) << p.out;
  }
  size_t k = 0;
  for (size_t t = 0; t < texts.size(); ++t) {
    std::set<std::string> distinct;
    for (const auto& name : names) {
      const auto reply = nlohmann::json::parse(replies[k++]);
      EXPECT_EQ(reply["id"], name + "/" + std::to_string(t));
      EXPECT_EQ(reply["adapter"], name);
      EXPECT_EQ(reply["output"], expected[name][t]) << name << ", text " << t;
      distinct.insert(expected[name][t]);
    }
    EXPECT_GE(distinct.size(), 3u) << "the adapters should disagree on text " << t;
  }
  EXPECT_NE(r.err.find("compacter++, "), std::string::npos) << r.err;  // the load report
}

TEST_F(ServeCli, BadRequestsGetAnErrorLineEachAndANonZeroExit) {
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const std::string requests =
      "{\"adapter\": \"adapter-bitfit\", \"text\": \"one\"}\n"
      "not json\n"
      "\n"
      "{\"adapter\": \"nope\", \"text\": \"x\"}\n"
      "{\"text\": 5}\n"
      "{\"text\": \"x\", \"temperature\": 1}\n"
      "[1, 2]\n"
      "{\"text\": \"no adapter named: the only one\", \"id\": 42}";  // no final newline
  auto r = testing::run_compacter("serve " + common_args() + " --adapter " + adapter_dir("bitfit"),
                                  requests);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("5 of 7 request(s) failed"), std::string::npos) << r.err;
  const auto replies = lines_of(r.out);
  ASSERT_EQ(replies.size(), 7u) << r.out;
  const std::vector<std::pair<int, std::string>> errors = {
      {2, "not JSON"},
      {4, "unknown adapter \"nope\" (serving: adapter-bitfit, base)"},
      {5, "\"text\" must be a string"},
      {6, "give \"text\" or the task's fields (such as \"temperature\"), not both"},
      {7, "expected a JSON object, got array"}};
  for (size_t i = 0; i < errors.size(); ++i) {
    const auto reply = nlohmann::json::parse(replies[i + 1]);
    EXPECT_EQ(reply["line"], errors[i].first);
    EXPECT_NE(reply["error"].get<std::string>().find(errors[i].second), std::string::npos)
        << reply.dump();
  }
  const auto first = nlohmann::json::parse(replies[0]);
  EXPECT_EQ(first["adapter"], "adapter-bitfit");  // named by its folder
  const auto last = nlohmann::json::parse(replies[6]);
  EXPECT_EQ(last["id"], 42);
  EXPECT_EQ(last["adapter"], "adapter-bitfit");
}

TEST_F(ServeCli, ParametersGiveNBestAndDetailsAndNamedErrors) {
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const std::string requests =
      "{\"text\": \"one\", \"id\": 1, \"parameters\": {\"num_beams\": 3, "
      "\"num_return_sequences\": 2, \"details\": true, \"max_new_tokens\": 4}}\n"
      "{\"text\": \"one\", \"id\": 2, \"parameters\": {\"num_beams\": 99}}\n"
      "{\"text\": \"one\", \"id\": 3, \"parameters\": {\"beams\": 2}}\n"
      "{\"text\": \"one\", \"id\": 4, \"parameters\": {\"labels\": [\"yes\", \"no\"]}}\n"
      "{\"text\": \"one\", \"id\": 5}\n";
  auto r = testing::run_compacter("serve " + common_args() + " --adapter " + adapter_dir("lora"),
                                  requests);
  EXPECT_NE(r.exit_code, 0);  // two requests failed
  const auto replies = lines_of(r.out);
  ASSERT_EQ(replies.size(), 5u) << r.out << r.err;
  const auto nbest = nlohmann::json::parse(replies[0]);
  EXPECT_TRUE(nbest["output"].is_string());  // the existing fields stay
  EXPECT_EQ(nbest["adapter"], "adapter-lora");
  ASSERT_EQ(nbest["details"]["best_of_sequences"].size(), 1u) << replies[0];
  EXPECT_LE(nbest["details"]["generated_tokens"].get<int>(), 4);
  EXPECT_EQ(nbest["details"]["tokens"].size(), nbest["details"]["generated_tokens"]);
  EXPECT_GE(nbest["details"]["score"].get<double>(),
            nbest["details"]["best_of_sequences"][0]["score"].get<double>());
  const auto limit = nlohmann::json::parse(replies[1]);
  EXPECT_EQ(limit["error_type"], "validation");
  EXPECT_NE(limit["error"].get<std::string>().find(
                "line 2: parameters.num_beams is 99, above the server's limit max_request_beams"),
            std::string::npos)
      << replies[1];
  const auto unknown = nlohmann::json::parse(replies[2]);
  EXPECT_EQ(unknown["error_type"], "bad_request");
  EXPECT_NE(unknown["error"].get<std::string>().find("unknown field \"beams\""), std::string::npos);
  const auto labels = nlohmann::json::parse(replies[3]);
  ASSERT_TRUE(labels["label_probabilities"].is_object()) << replies[3];
  EXPECT_NEAR(labels["label_probabilities"]["yes"].get<double>() +
                  labels["label_probabilities"]["no"].get<double>(),
              1.0, 1e-9);
  const auto plain = nlohmann::json::parse(replies[4]);
  EXPECT_FALSE(plain.contains("details"));  // as before without parameters
}

TEST_F(ServeCli, BadOptionsAreRefusedBeforeServing) {
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const std::string bitfit = adapter_dir("bitfit");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {" --adapter a=" + bitfit + " --adapter a=" + bitfit, "\"a\" is given twice"},
      {" --adapter base=" + bitfit, "reserved for the base model"},
      {" --adapter x=" + dir_->path() + "/missing", dir_->path() + "/missing"},
      {" --batch-size 0", "--batch-size must be at least 1"}};
  for (const auto& [args, message] : cases) {
    auto r = testing::run_compacter("serve " + common_args() + args, "{\"text\": \"x\"}\n");
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.err.find(message), std::string::npos) << args << "\n" << r.err;
    EXPECT_EQ(r.out, "") << args;
  }
}

}  // namespace
}  // namespace compacter

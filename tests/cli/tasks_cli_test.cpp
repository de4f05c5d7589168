// The `compacter tasks`, `compacter data` and `compacter score` commands (tools/compacter/
// cmd_tasks.cpp), run as the built program.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace compacter {
namespace {

using ::compacter::testing::run_compacter;
using ::compacter::testing::shared_path;
using ::compacter::testing::TempDir;
using ::compacter::testing::write_file;
using nlohmann::json;

std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

// Each run loads libtorch (about half a second), so the tests keep the number of runs small.
TEST(TasksCli, ListsTasks) {
  const auto js = run_compacter("tasks --json");
  ASSERT_EQ(js.exit_code, 0) << js.err;
  const auto tasks = json_lines(js.out);
  ASSERT_EQ(tasks.size(), 17u);
  EXPECT_EQ(tasks[0]["name"], "cola");
  EXPECT_EQ(tasks[0]["metrics"], json::array({"mcc"}));
  EXPECT_EQ(tasks[2]["paper_sizes"]["test"], 204);
}

TEST(TasksCli, DataPrintsExamplesWithTokenIds) {
  REQUIRE_SHARED("data/glue/RTE/dev.tsv");
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const auto r = run_compacter("data --task rte --data-dir '" + shared_path("data/glue/RTE") +
                               "' --split test --limit 2 --method compacter --tokenizer '" +
                               shared_path("data/t5-tokenizer/spiece.model") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = json_lines(r.out);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["source"].get<std::string>().rfind("sentence1: ", 0), 0u);  // no prefix
  EXPECT_EQ(rows[0]["answers"], json::array({rows[0]["target"]}));
  const auto ids = rows[0]["source_ids"].get<std::vector<int64_t>>();
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.back(), 1);  // </s>
  EXPECT_LE(ids.size(), 128u);
  const auto target = rows[0]["target_ids"].get<std::vector<int64_t>>();
  EXPECT_EQ(target.back(), 1);
}

// `data --tokenizer byte` (and a ByT5 model folder): ids are the UTF-8 bytes + 3, checked against
// the printed source text itself; the target is the label word's bytes.
TEST(TasksCli, DataWithByteLevelTokenizer) {
  REQUIRE_SHARED("data/glue/RTE/dev.tsv");
  TempDir dir;
  write_file(dir.file("config.json"), "{}");
  write_file(dir.file("tokenizer_config.json"), "{\"tokenizer_class\": \"ByT5Tokenizer\"}");
  std::string first;
  for (const std::string& tok : {std::string("byte"), dir.path()}) {
    const auto r = run_compacter("data --task rte --data-dir '" + shared_path("data/glue/RTE") +
                                 "' --split test --limit 1 --method compacter --fix-quirks "
                                 "--tokenizer '" +
                                 tok + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto rows = json_lines(r.out);
    ASSERT_EQ(rows.size(), 1u);
    const std::string source = rows[0]["source"], target = rows[0]["target"];
    std::vector<int64_t> bytes;
    for (unsigned char c : source) bytes.push_back(c + 3);
    const auto ids = rows[0]["source_ids"].get<std::vector<int64_t>>();
    ASSERT_GE(ids.size(), 2u);
    EXPECT_EQ(ids.back(), 1);
    // Truncated to the task's source length (keeping </s>), else the whole text.
    const std::vector<int64_t> head(
        bytes.begin(),
        bytes.begin() + static_cast<std::ptrdiff_t>(std::min(bytes.size(), ids.size() - 1)));
    EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.end() - 1), head);
    std::vector<int64_t> target_ids;
    for (unsigned char c : target) target_ids.push_back(c + 3);
    target_ids.push_back(1);
    EXPECT_EQ(rows[0]["target_ids"].get<std::vector<int64_t>>(), target_ids) << target;
    if (first.empty())
      first = r.out;
    else
      EXPECT_EQ(r.out, first);  // the folder's choice is the same tokenizer
  }
}

TEST(TasksCli, ScoreMatchesPredictionsById) {
  REQUIRE_SHARED("data/glue/MRPC/dev.tsv");
  TempDir dir;
  const auto data = run_compacter("data --task mrpc --data-dir '" + shared_path("data/glue/MRPC") +
                                  "' --split validation");
  ASSERT_EQ(data.exit_code, 0) << data.err;
  write_file(dir.file("refs.jsonl"), data.out);
  const auto refs = json_lines(data.out);
  ASSERT_EQ(refs.size(), 204u);
  // Perfect predictions, written in reverse order.
  std::string preds;
  for (auto it = refs.rbegin(); it != refs.rend(); ++it)
    preds += json{{"id", (*it)["id"]}, {"prediction", (*it)["target"]}}.dump() + "\n";
  write_file(dir.file("preds.jsonl"), preds);
  auto r = run_compacter("score --task mrpc --predictions '" + dir.file("preds.jsonl") +
                         "' --references '" + dir.file("refs.jsonl") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json m = json::parse(r.out);
  EXPECT_DOUBLE_EQ(m["accuracy"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(m["f1"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(m["average_metrics"].get<double>(), 100.0);
  // A missing id and an unknown id are errors naming the id.
  const std::string first = refs[0]["id"];
  write_file(dir.file("short.jsonl"), preds.substr(0, preds.rfind('\n', preds.size() - 2) + 1));
  r = run_compacter("score --task mrpc --predictions '" + dir.file("short.jsonl") +
                    "' --references '" + dir.file("refs.jsonl") + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no prediction for id \"" + first + "\""), std::string::npos) << r.err;
  write_file(dir.file("extra.jsonl"),
             preds + "{\"id\": \"mrpc/validation/9999\", \"prediction\": \"1\"}\n");
  r = run_compacter("score --task mrpc --predictions '" + dir.file("extra.jsonl") +
                    "' --references '" + dir.file("refs.jsonl") + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("mrpc/validation/9999"), std::string::npos) << r.err;
}

TEST(TasksCli, BadInputExitsWithOneAndSkipInvalidReportsTheCount) {
  TempDir dir;
  write_file(dir.file("train.tsv"),
             "index\tsentence1\tsentence2\tlabel\n0\ta\tb\n1\ta\tb\tentailment\n");
  auto r = run_compacter("data --task rte --official-splits --split train --data-dir '" +
                         dir.path() + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(dir.file("train.tsv") + ":2: expected 4 tab-separated columns"),
            std::string::npos)
      << r.err;
  r = run_compacter("data --task rte --official-splits --split train --skip-invalid --data-dir '" +
                    dir.path() + "'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json_lines(r.out).size(), 1u);
  EXPECT_NE(r.err.find("skipped 1 invalid row"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace compacter

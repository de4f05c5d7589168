// `compacter report` on hand-written results.json files: the rows carry the numbers of the files,
// the table labels what its time and size columns measure, and a run from before evaluation time
// was measured apart shows "-" rather than a training time that includes evaluations.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>

#include "support/test_support.h"

namespace compacter {
namespace {

void write_run(const std::string& dir, const nlohmann::json& time) {
  std::filesystem::create_directories(dir);
  const nlohmann::json results = {
      {"method", "compacter++"},
      {"metrics", {{"test", {{"accuracy", 61.25}}}, {"validation", {{"accuracy", 60.0}}}}},
      {"parameters", {{"trainable", 12345}, {"percent_of_backbone", 0.5}}},
      {"adapter_bytes", 34567},
      {"config", {{"model", "out/t5"}}},
      {"time", time}};
  testing::write_file(dir + "/results.json", results.dump());
}

TEST(ReportCli, RowsTableAndLegend) {
  testing::TempDir dir;
  write_run(dir.file("new"), {{"train_seconds", 30.0},
                              {"evaluation_seconds", 12.0},
                              {"total_seconds", 42.0},
                              {"examples_per_second", 400.0}});
  write_run(dir.file("old"), {{"train_seconds", 42.0}, {"examples_per_second", 285.7}});
  auto r = testing::run_compacter("report --json " + dir.file("new") + " " + dir.file("old"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::getline(lines, line);
  const auto fresh = nlohmann::json::parse(line);
  EXPECT_EQ(fresh["run"], "new");
  EXPECT_EQ(fresh["test"], 61.25);
  EXPECT_EQ(fresh["validation"], 60.0);
  EXPECT_EQ(fresh["train_seconds"], 30.0);
  EXPECT_EQ(fresh["evaluation_seconds"], 12.0);
  EXPECT_EQ(fresh["examples_per_second"], 400.0);
  EXPECT_EQ(fresh["adapter_file_bytes"], 34567);
  std::getline(lines, line);
  const auto old = nlohmann::json::parse(line);
  EXPECT_TRUE(old["train_seconds"].is_null());
  EXPECT_TRUE(old["examples_per_second"].is_null());

  auto table = testing::run_compacter("report " + dir.file("new") + " " + dir.file("old"));
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("adapter file"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("34.6 kB"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("61.2"), std::string::npos) << table.out;  // 61.25 to one decimal
  EXPECT_NE(table.out.find("400.0"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("share of the backbone's parameters"), std::string::npos);
  EXPECT_NE(table.out.find("train s and train ex/s: the training steps only"), std::string::npos);

  auto missing = testing::run_compacter("report " + dir.file("nothing"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find(dir.file("nothing") + "/results.json"), std::string::npos);
}

}  // namespace
}  // namespace compacter

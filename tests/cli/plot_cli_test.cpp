// `compacter report --plot DIR` and `compacter bench --plot FILE --plot-from JSON` on hand-written
// inputs: which figures are written and which skipped (and why) on stderr, the files are SVG, and
// a missing or corrupt input fails naming the file with nothing written.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "support/test_support.h"

namespace compacter {
namespace {

void write_run(const std::string& dir, const std::string& method, double percent, double test) {
  std::filesystem::create_directories(dir);
  const nlohmann::json results = {
      {"method", method},
      {"metrics", {{"test", {{"accuracy", test}}}}},
      {"parameters", {{"trainable", 10}, {"percent_of_backbone", percent}}},
      {"adapter_bytes", 40},
      {"config", {{"model", "t5"}}},
      {"time", {{"train_seconds", 1.0}}}};
  testing::write_file(dir + "/results.json", results.dump());
  testing::write_file(dir + "/metrics.jsonl", "{\"type\":\"train\",\"step\":5,\"loss\":1.5}\n");
}

TEST(PlotCli, ReportWritesTheFiguresItHasDataFor) {
  testing::TempDir dir;
  write_run(dir.file("a"), "bitfit", 0.1, 50);
  write_run(dir.file("b"), "full", 100, 60);
  const std::string out = dir.file("plots");
  auto r =
      testing::run_compacter("report --plot " + out + " " + dir.file("a") + " " + dir.file("b"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("bitfit"), std::string::npos);  // the table still
  EXPECT_NE(r.err.find("wrote " + out + "/figure1.svg"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("wrote " + out + "/loss.svg"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("skipped figure4.svg"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("skipped validation.svg"), std::string::npos) << r.err;
  EXPECT_EQ(testing::read_file(out + "/figure1.svg").rfind("<?xml", 0), 0u);
  EXPECT_FALSE(std::filesystem::exists(out + "/figure4.svg"));

  const std::string other = dir.file("other");
  std::filesystem::remove(dir.file("b") + "/metrics.jsonl");
  auto bad =
      testing::run_compacter("report --plot " + other + " " + dir.file("a") + " " + dir.file("b"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find(dir.file("b") + "/metrics.jsonl"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(other));
}

TEST(PlotCli, BenchPlotsASavedDocument) {
  testing::TempDir dir;
  const nlohmann::json doc = {
      {"methods",
       {{{"method", "full"}, {"seconds_per_step", 2.0}, {"peak_memory_bytes", 1000}},
        {{"method", "lora"}, {"seconds_per_step", 1.0}, {"peak_memory_bytes", 700}}}}};
  testing::write_file(dir.file("bench.json"), doc.dump());
  auto r = testing::run_compacter("bench --plot " + dir.file("t3.svg") + " --plot-from " +
                                  dir.file("bench.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(testing::read_file(dir.file("t3.svg")).find("class=\"bar\""), std::string::npos);

  testing::write_file(dir.file("broken.json"), "{");
  auto bad = testing::run_compacter("bench --plot " + dir.file("x.svg") + " --plot-from " +
                                    dir.file("broken.json"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find(dir.file("broken.json")), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.svg")));
}

}  // namespace
}  // namespace compacter

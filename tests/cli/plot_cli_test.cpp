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

size_t points_in(const std::string& svg) {
  size_t n = 0;
  for (size_t at = 0; (at = svg.find("<circle class=\"point\"", at)) != std::string::npos; ++at)
    ++n;
  return n;
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

TEST(PlotCli, BenchRunsWriteTheirFigure) {
  testing::TempDir dir;
  const std::string config = testing::write_tiny_t5_config(dir, 128);
  auto r = testing::run_compacter("bench --model-config '" + config +
                                  "' --methods full,bitfit --batch-size 2 --source-len 8 "
                                  "--target-len 3 --max-steps 1 --plot " +
                                  dir.file("t3.svg"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string bars = testing::read_file(dir.file("t3.svg"));
  EXPECT_NE(bars.find("data-series=\"time per step\""), std::string::npos);
  EXPECT_NE(r.err.find("wrote " + dir.file("t3.svg")), std::string::npos) << r.err;

  auto inference = testing::run_compacter("bench --inference --model-config '" + config +
                                          "' --methods none --dtypes fp32 --batch-sizes 1,2 "
                                          "--source-len 6 --max-new-tokens 2 --repeats 1 "
                                          "--warmup 1 --plot " +
                                          dir.file("inference.svg"));
  ASSERT_EQ(inference.exit_code, 0) << inference.err;
  EXPECT_EQ(points_in(testing::read_file(dir.file("inference.svg"))), 2u);

  // A missing folder is refused before anything runs.
  auto missing = testing::run_compacter("bench --model-config '" + config +
                                        "' --methods full --plot " + dir.file("no/t3.svg"));
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find(dir.file("no")), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace compacter

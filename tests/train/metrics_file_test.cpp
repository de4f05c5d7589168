// The one reader of a run's metrics.jsonl (train/metrics_file.h), on hand-written files: records
// in file order with empty lines skipped, a malformed or non-object line named by its 1-based
// line number with the caller's advice appended, and a missing file named.
#include <gtest/gtest.h>

#include <string>

#include "compacter/core/error.h"
#include "compacter/train/metrics_file.h"
#include "support/test_support.h"

namespace compacter::train {
namespace {

using testing::error_of;

TEST(MetricsFile, ReadsEveryRecordInOrderAndSkipsEmptyLines) {
  testing::TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  testing::write_file(path,
                      "{\"type\":\"train\",\"step\":1,\"loss\":2.5}\n"
                      "\n"
                      "{\"type\":\"eval\",\"step\":2,\"accuracy\":0.75}\n"
                      "\n\n"
                      "{\"type\":\"train\",\"step\":3,\"loss\":1.25}");  // no final newline
  const auto records = read_metrics_file(path);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0]["step"], 1);
  EXPECT_EQ(records[0]["loss"], 2.5);
  EXPECT_EQ(records[1]["type"], "eval");
  EXPECT_EQ(records[1]["accuracy"], 0.75);
  EXPECT_EQ(records[2]["step"], 3);
  testing::write_file(path, "");
  EXPECT_TRUE(read_metrics_file(path).empty());
}

TEST(MetricsFile, ABadLineIsNamedByItsLineNumber) {
  testing::TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  // Line 4 (after an empty line 2) is cut short; the empty line still counts.
  testing::write_file(path, "{\"step\":1}\n\n{\"step\":2}\n{\"step\":3,\"lo\n{\"step\":4}\n");
  std::string m = error_of([&] { read_metrics_file(path); });
  EXPECT_NE(m.find(path + ":4: not a JSON record"), std::string::npos) << m;
  m = error_of([&] { read_metrics_file(path, "; start again with --overwrite"); });
  EXPECT_NE(m.find(path + ":4: not a JSON record"), std::string::npos) << m;
  EXPECT_EQ(m.substr(m.size() - 30), "; start again with --overwrite") << m;

  testing::write_file(path, "{\"step\":1}\n[1, 2]\n");
  m = error_of([&] { read_metrics_file(path); });
  EXPECT_EQ(m, path + ":2: not a JSON object");

  m = error_of([&] { read_metrics_file(dir.file("none.jsonl")); });
  EXPECT_EQ(m, dir.file("none.jsonl") + ": cannot be opened");
}

}  // namespace
}  // namespace compacter::train

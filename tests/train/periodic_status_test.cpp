// PeriodicStatus (core/progress.h): status lines for long loops, none for short ones.
#include <gtest/gtest.h>

#include <vector>

#include "compacter/core/progress.h"

namespace compacter::periodic_status_test {

struct Lines : ProgressSink {
  std::vector<std::string> status_lines;
  void status(const std::string& line) override { status_lines.push_back(line); }
};

TEST(PeriodicStatus, ShortLoopsStayQuiet) {
  Lines sink;
  PeriodicStatus status(sink, "generating", "inputs", 3600.0);
  for (size_t done = 1; done <= 5; ++done) status(done, 5);
  EXPECT_TRUE(sink.status_lines.empty());
}

TEST(PeriodicStatus, LongLoopsSayHowFarTheyAreButNotWhenDone) {
  Lines sink;
  PeriodicStatus status(sink, "generating", "inputs", 0.0);
  for (size_t done = 1; done <= 3; ++done) status(done, 3);
  ASSERT_EQ(sink.status_lines.size(), 2u);
  EXPECT_EQ(sink.status_lines[0], "generating: 1/3 inputs, 0 s");
  EXPECT_EQ(sink.status_lines[1], "generating: 2/3 inputs, 0 s");
}

}  // namespace compacter::periodic_status_test

// main() of every test program (tests/CMakeLists.txt). Runs GoogleTest; when no test failed but
// some were skipped, lists the skipped tests with their reasons on stdout and exits with
// COMPACTER_TEST_SKIP_CODE, which CTest's SKIP_RETURN_CODE reports as "Skipped": a program whose
// tests were skipped is never reported as passed. A failure exits 1 as usual.
#include <gtest/gtest.h>

#include <iostream>
#include <string>

namespace {

// "[  SKIPPED ] Suite.Name: reason" for every skipped test (scripts/test.sh greps these).
void print_skipped(const ::testing::UnitTest& unit) {
  std::cout << "[  SKIPPED ] " << unit.skipped_test_count()
            << " test(s); this program reports itself as skipped (exit code "
            << COMPACTER_TEST_SKIP_CODE << "):\n";
  for (int s = 0; s < unit.total_test_suite_count(); ++s) {
    const ::testing::TestSuite& suite = *unit.GetTestSuite(s);
    for (int t = 0; t < suite.total_test_count(); ++t) {
      const ::testing::TestInfo& info = *suite.GetTestInfo(t);
      const ::testing::TestResult& result = *info.result();
      if (!info.should_run() || !result.Skipped()) continue;
      std::string reason = "no reason given";
      for (int p = 0; p < result.total_part_count(); ++p) {
        const ::testing::TestPartResult& part = result.GetTestPartResult(p);
        if (part.skipped() && part.message() && *part.message()) reason = part.message();
      }
      std::cout << "[  SKIPPED ] " << suite.name() << "." << info.name() << ": " << reason << "\n";
    }
  }
  std::cout.flush();
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int status = RUN_ALL_TESTS();
  const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
  if (status != 0 || unit.failed_test_count() > 0) return status != 0 ? status : 1;
  if (unit.skipped_test_count() > 0) {
    print_skipped(unit);
    return COMPACTER_TEST_SKIP_CODE;
  }
  return 0;
}

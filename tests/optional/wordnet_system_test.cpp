// The WordNet reader and task (pretrain/wordnet.h) on the real WordNet 3.0 files of Debian's
// wordnet-base, an optional package: skipped (CTest: Skipped) when /usr/share/wordnet is absent.
// Its own file in tests/optional so that the skip marks only this test (tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>

#include "compacter/pretrain/wordnet.h"

namespace compacter::pretrain {
namespace {

// The real WordNet 3.0 of Debian's wordnet-base.
TEST(PretrainWordNet, RealWordNetFiles) {
  const std::string dir = "/usr/share/wordnet";
  if (!std::filesystem::exists(dir + "/data.noun"))
    GTEST_SKIP() << "WordNet not installed (" << dir << "/data.noun; apt-get install wordnet-base)";
  const WordNetDataset d = build_wordnet_dataset(dir, WordNetTaskOptions{});
  EXPECT_EQ(d.categories.size(), 10u);
  EXPECT_EQ(d.categories[0], "artifact");
  const size_t total = d.train.size() + d.validation.size() + d.test.size();
  EXPECT_GT(total, 60000u);
  EXPECT_NEAR(static_cast<double>(d.test.size()) / total, 0.05, 0.01);
  const auto counts = class_counts(d.test);
  int64_t majority = 0;
  for (const auto& [name, count] : counts) majority = std::max(majority, count);
  EXPECT_LT(static_cast<double>(majority) / d.test.size(), 0.25);
  std::set<std::string> held_out;
  for (const auto* split : {&d.validation, &d.test})
    for (const auto& ex : *split) held_out.insert(ex.source);
  for (const std::string& line : d.corpus) {
    ASSERT_FALSE(held_out.count(line)) << line;
    const size_t colon = line.find(": ");
    if (colon != std::string::npos) {
      ASSERT_FALSE(held_out.count(line.substr(colon + 2))) << line;
    }
  }
  EXPECT_GT(d.corpus.size(), 150000u);
}

}  // namespace
}  // namespace compacter::pretrain

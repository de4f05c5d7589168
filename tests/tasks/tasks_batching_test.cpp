// Dynamic padding and length-grouped batches (tasks/batching.h, spec §4.5), and the target
// lengths of §4.5 with the real T5 tokenizer.
#include "compacter/tasks/batching.h"

#include <gtest/gtest.h>

#include <set>

#include "compacter/data/tokenizer.h"
#include "support/test_support.h"

namespace compacter::tasks {
namespace {

TEST(TasksBatching, PadsSourcesWithZeroAndLabelsWithMinus100) {
  const std::vector<EncodedExample> items = {{{5, 6, 1}, {3, 1}}, {{7, 1}, {4, 9, 1}}};
  const Batch b = collate(items, {0, 1});
  EXPECT_TRUE(b.input_ids.equal(torch::tensor({5, 6, 1, 7, 1, 0}, torch::kLong).view({2, 3})));
  EXPECT_TRUE(b.attention_mask.equal(torch::tensor({1, 1, 1, 1, 1, 0}, torch::kLong).view({2, 3})));
  EXPECT_TRUE(b.labels.equal(torch::tensor({3, 1, -100, 4, 9, 1}, torch::kLong).view({2, 3})));
}

TEST(TasksBatching, BatchesCoverEveryExampleOnce) {
  std::vector<EncodedExample> items;
  for (int i = 0; i < 23; ++i)
    items.push_back({std::vector<int64_t>(static_cast<size_t>(1 + i % 7), 1), {1}});
  for (bool shuffle : {false, true})
    for (bool by_length : {false, true}) {
      const auto batches = make_batches(items, 5, shuffle, by_length, 42);
      ASSERT_EQ(batches.size(), 5u);
      std::set<size_t> seen;
      for (const auto& b : batches) seen.insert(b.begin(), b.end());
      EXPECT_EQ(seen.size(), 23u);
      if (by_length && !shuffle) {
        EXPECT_EQ(items[batches[0][0]].source_ids.size(), 7u);
      }
    }
  EXPECT_EQ(make_batches(items, 5, false, false, 0)[0], (std::vector<size_t>{0, 1, 2, 3, 4}));
}

TEST(TasksBatching, TargetLengthsFromTheLabels) {
  REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
  const T5Tokenizer tok =
      T5Tokenizer::load(::compacter::testing::shared_path("data/t5-tokenizer/spiece.model"));
  // The longest of "0" / "1" with </s>: "1" is the piece "▁1" (2 ids), "0" is "▁" "0" (3 ids).
  EXPECT_EQ(tok.encode("1").size(), 2u);
  EXPECT_EQ(tok.encode("0").size(), 3u);
  EXPECT_EQ(target_length(find_task("rte"), tok), 3);
  EXPECT_EQ(target_length(find_task("record"), tok), 128);
  // STS-B labels "0.0".."5.0" and the label words are longer.
  EXPECT_GT(target_length(find_task("stsb"), tok), 2);
  EXPECT_GT(target_length(find_task("rte"), tok, /*fix_quirks=*/true), 2);
  const Example e{"x", "sentence1: a b c sentence2: d", "1", {"1"}, ""};
  TaskInfo short_task = find_task("rte");
  short_task.max_source_length = 4;
  const EncodedExample enc = encode_example(e, short_task, tok, 2);
  ASSERT_EQ(enc.source_ids.size(), 4u);
  EXPECT_EQ(enc.source_ids.back(), 1);  // the end is cut, </s> kept
}

}  // namespace
}  // namespace compacter::tasks

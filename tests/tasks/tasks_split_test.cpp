// Splits of spec §4.1 and the low-resource subsample of §4.6: the permutation is libtorch's
// randperm with a fresh CPU generator (checked against Fisher-Yates over MT19937 written here),
// the paper's sizes for every task whose files are in ../shared/data, the small / large / MNLI
// rules, and Appendix B's constant-prediction rates as an end-to-end check of the test halves.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/tasks/tasks.h"
#include "support/test_support.h"

namespace compacter::tasks {
namespace {

using ::compacter::testing::shared_path;
using ::compacter::testing::TempDir;
using ::compacter::testing::write_file;

DataOptions paper(const std::string& relative_dir) {
  DataOptions o;
  o.data_dir = shared_path(relative_dir);
  return o;
}

struct Sizes {
  size_t train, validation, test;
};

void expect_sizes(const std::string& task, const std::string& dir, Sizes s, bool train = true) {
  const DataOptions o = paper(dir);
  if (train) {
    EXPECT_EQ(load_split(task, "train", o).size(), s.train) << task;
  }
  EXPECT_EQ(load_split(task, "validation", o).size(), s.validation) << task;
  EXPECT_EQ(load_split(task, "test", o).size(), s.test) << task;
  // The sizes are the ones the registry states (§4.1 table).
  const TaskInfo& t = find_task(task);
  if (train) {
    EXPECT_EQ(t.paper_sizes.train, static_cast<int64_t>(s.train)) << task;
  }
  EXPECT_EQ(t.paper_sizes.validation, static_cast<int64_t>(s.validation)) << task;
  EXPECT_EQ(t.paper_sizes.test, static_cast<int64_t>(s.test)) << task;
}

TEST(TasksSplit, RandpermIsFisherYatesOverMt19937) {
  // What PyTorch's CPU randperm does for n < 2^32 / 20: swap i with i + random() % (n - i).
  for (int64_t n : {1, 2, 10, 277, 5000}) {
    std::mt19937 gen(42);
    std::vector<int64_t> expected(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) expected[static_cast<size_t>(i)] = i;
    for (int64_t i = 0; i + 1 < n; ++i) {
      const int64_t z = static_cast<int64_t>(gen() % static_cast<uint32_t>(n - i));
      std::swap(expected[static_cast<size_t>(i)], expected[static_cast<size_t>(i + z)]);
    }
    EXPECT_EQ(permutation(n, 42), expected) << n;
  }
  EXPECT_NE(permutation(100, 42), permutation(100, 43));
  EXPECT_EQ(permutation(100, 7), permutation(100, 7));  // a fresh generator every time
}

TEST(TasksSplit, GlueSizesOfTheTable) {
  REQUIRE_SHARED("data/glue/CoLA/train.tsv");
  expect_sizes("cola", "data/glue/CoLA", {8551, 521, 522});
  expect_sizes("sst2", "data/glue/SST-2", {66349, 1000, 872});
  expect_sizes("mrpc", "data/glue/MRPC", {3668, 204, 204});
  expect_sizes("stsb", "data/glue/STS-B", {5749, 750, 750});
  expect_sizes("rte", "data/glue/RTE", {2490, 138, 139});
  expect_sizes("wnli", "data/glue/WNLI", {635, 35, 36});
  // QNLI: only dev/test are stored, so only the test split (the original validation) loads.
  EXPECT_EQ(load_split("qnli", "test", paper("data/glue/QNLI")).size(), 5463u);
  EXPECT_THROW(load_split("qnli", "train", paper("data/glue/QNLI")), Error);
}

TEST(TasksSplit, SuperGlueSizesOfTheTable) {
  REQUIRE_SHARED("data/superglue/CB/train.jsonl");
  expect_sizes("cb", "data/superglue/CB", {250, 28, 28});
  expect_sizes("copa", "data/superglue/COPA", {400, 50, 50});
  expect_sizes("superglue-rte", "data/superglue/RTE", {2490, 138, 139});
  expect_sizes("boolq", "data/superglue/BoolQ", {0, 1635, 1635}, false);
  expect_sizes("wic", "data/superglue/WiC", {0, 319, 319}, false);
  expect_sizes("multirc", "data/superglue/MultiRC", {0, 2424, 2424}, false);
  expect_sizes("wsc", "data/superglue/WSC", {0, 52, 52}, false);
}

TEST(TasksSplit, SmallGroupHalvesThePermutedValidationSet) {
  REQUIRE_SHARED("data/glue/RTE/dev.tsv");
  const auto val = load_split("rte", "validation", paper("data/glue/RTE"));
  const auto test = load_split("rte", "test", paper("data/glue/RTE"));
  const std::vector<int64_t> p = permutation(277, 42);
  ASSERT_EQ(val.size(), 138u);
  for (size_t i = 0; i < val.size(); ++i)
    EXPECT_EQ(val[i].id, "rte/validation/" + std::to_string(p[i]));
  for (size_t i = 0; i < test.size(); ++i)
    EXPECT_EQ(test[i].id, "rte/validation/" + std::to_string(p[138 + i]));
  std::set<std::string> ids;
  for (const auto* part : {&val, &test})
    for (const Example& e : *part) ids.insert(e.id);
  EXPECT_EQ(ids.size(), 277u);  // disjoint and complete
  // Train stays whole and in file order.
  EXPECT_EQ(load_split("rte", "train", paper("data/glue/RTE"))[5].id, "rte/train/5");
}

TEST(TasksSplit, LargeGroupTakesValidationFromTrain) {
  REQUIRE_SHARED("data/glue/SST-2/train.tsv");
  const DataOptions o = paper("data/glue/SST-2");
  const auto val = load_split("sst2", "validation", o);
  const auto train = load_split("sst2", "train", o);
  const auto test = load_split("sst2", "test", o);
  const std::vector<int64_t> p = permutation(67349, 42);
  EXPECT_EQ(val[0].id, "sst2/train/" + std::to_string(p[0]));
  EXPECT_EQ(val[999].id, "sst2/train/" + std::to_string(p[999]));
  EXPECT_EQ(train[0].id, "sst2/train/" + std::to_string(p[1000]));  // permuted order kept
  EXPECT_EQ(test[0].id, "sst2/validation/0");                       // original order
  // Low-resource (§4.6): the first n of the permuted remainder.
  DataOptions low = o;
  low.max_train_samples = 100;
  const auto small = load_split("sst2", "train", low);
  ASSERT_EQ(small.size(), 100u);
  EXPECT_EQ(small[99].id, "sst2/train/" + std::to_string(p[1099]));
  EXPECT_EQ(load_split("sst2", "validation", low).size(), 1000u);  // unchanged
}

TEST(TasksSplit, LowResourceSmallGroupDrawsAFreshPermutation) {
  REQUIRE_SHARED("data/glue/RTE/train.tsv");
  DataOptions o = paper("data/glue/RTE");
  o.max_train_samples = 500;
  const auto train = load_split("rte", "train", o);
  const std::vector<int64_t> p = permutation(2490, 42);
  ASSERT_EQ(train.size(), 500u);
  for (size_t i : {0, 1, 499}) EXPECT_EQ(train[i].id, "rte/train/" + std::to_string(p[i]));
  o.max_train_samples = 100000;  // more than there is: all rows, shuffled
  EXPECT_EQ(load_split("rte", "train", o).size(), 2490u);
  EXPECT_EQ(low_resource_epochs_for(100), 1000);
  EXPECT_EQ(low_resource_epochs_for(4000), 25);
  EXPECT_EQ(low_resource_epochs().size(), 5u);
  EXPECT_THROW(low_resource_epochs_for(300), Error);
}

// Appendix B: constant prompt-tuning predictions score the majority rate of the test halves, so
// these counts pin the permutation: a different order would be unlikely to give all three.
TEST(TasksSplit, PaperConstantPredictionRatesMatchOurTestHalves) {
  REQUIRE_SHARED("data/glue/MRPC/dev.tsv");
  REQUIRE_SHARED("data/superglue/BoolQ/val.jsonl");
  auto count = [](const std::vector<Example>& xs, const std::string& label) {
    return std::count_if(xs.begin(), xs.end(), [&](const Example& e) { return e.target == label; });
  };
  const auto mrpc = load_split("mrpc", "test", paper("data/glue/MRPC"));
  EXPECT_EQ(count(mrpc, "1"), 139);  // 68.14 = 139 / 204
  const auto rte = load_split("rte", "test", paper("data/glue/RTE"));
  EXPECT_EQ(std::max(count(rte, "0"), count(rte, "1")), 76);  // 54.68 = 76 / 139
  const auto boolq = load_split("boolq", "test", paper("data/superglue/BoolQ"));
  EXPECT_EQ(std::max(count(boolq, "0"), count(boolq, "1")), 1009);  // 61.71 = 1009 / 1635
  // MRPC's F1 fits too: constant "1" on 139 positives of 204 gives 2*139 / (139 + 204) = 81.05.
  const auto m = score("mrpc", std::vector<std::string>(mrpc.size(), "1"), mrpc);
  EXPECT_NEAR(m.at("accuracy"), 68.14, 0.005);
  EXPECT_NEAR(m.at("f1"), 81.05, 0.005);
  // (CB's 67.86 = 19/28 is not a constant prediction: its F1 of 46.99 would then be at most
  // 2*19/(19+28)/3 = 26.95, so it is no check of the split.)
}

TEST(TasksSplit, OfficialSplitsMode) {
  REQUIRE_SHARED("data/glue/RTE/test.tsv");
  DataOptions o = paper("data/glue/RTE");
  o.paper_splits = false;
  EXPECT_EQ(load_split("rte", "validation", o).size(), 277u);
  const auto test = load_split("rte", "test", o);
  EXPECT_EQ(test.size(), 3000u);
  EXPECT_EQ(test[0].target, "");  // official test files carry no labels
}

// Microsoft's MRPC files (msr_paraphrase_train.txt + dev_ids.tsv) give the same examples, in the
// same order, as the train.tsv / dev.tsv that GLUE's format_mrpc writes from them; and the
// labelled msr_paraphrase_test.txt serves an official test split.
TEST(TasksSplit, MrpcFromMicrosoftsFilesEqualsGlues) {
  REQUIRE_SHARED("data/glue/MRPC/msr_paraphrase_train.txt");
  TempDir dir;
  for (const std::string f : {"msr_paraphrase_train.txt", "msr_paraphrase_test.txt", "dev_ids.tsv"})
    std::filesystem::copy_file(shared_path("data/glue/MRPC/" + f), dir.file(f));
  auto same = [](const std::vector<Example>& a, const std::vector<Example>& b) {
    if (a.size() != b.size())
      return ::testing::AssertionFailure() << a.size() << " vs " << b.size();
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i].id != b[i].id || a[i].source != b[i].source || a[i].target != b[i].target)
        return ::testing::AssertionFailure()
               << "row " << i << ": " << a[i].source << " vs " << b[i].source;
    return ::testing::AssertionSuccess();
  };
  for (const bool paper_splits : {true, false}) {
    SCOPED_TRACE(paper_splits);
    DataOptions raw, glue = paper("data/glue/MRPC");
    raw.data_dir = dir.path();
    raw.paper_splits = glue.paper_splits = paper_splits;
    for (const std::string split : {"train", "validation"})
      EXPECT_TRUE(same(load_split("mrpc", split, raw), load_split("mrpc", split, glue))) << split;
    if (paper_splits) {
      EXPECT_TRUE(same(load_split("mrpc", "test", raw), load_split("mrpc", "test", glue)));
    }
  }
  DataOptions official;
  official.data_dir = dir.path();
  official.paper_splits = false;
  EXPECT_EQ(load_split("mrpc", "train", official).size(), 3668u);
  EXPECT_EQ(load_split("mrpc", "validation", official).size(), 408u);
  const auto test = load_split("mrpc", "test", official);
  ASSERT_EQ(test.size(), 1725u);
  // Its first row, by hand: label 1, "PCCW 's chief operating officer , Mike Butcher , and Alex
  // Arena , the chief financial officer , will report directly to Mr So ."
  EXPECT_EQ(test[0].target, "1");
  EXPECT_EQ(test[0].source.rfind("mrpc sentence1: PCCW 's chief operating officer", 0), 0u)
      << test[0].source;
}

std::string mnli_tsv(int rows, const std::string& tag) {
  std::string s =
      "index\tpromptID\tpairID\tgenre\tb1\tb2\tp1\tp2\tsentence1\tsentence2\tlabel1\tgold_label\n";
  for (int i = 0; i < rows; ++i)
    s += std::to_string(i) + "\t0\t0\tg\t.\t.\t.\t.\t" + tag + " premise " + std::to_string(i) +
         "\th\tentailment\tentailment\n";
  return s;
}

TEST(TasksSplit, MnliUsesMismatchedForValidationAndMatchedForTest) {
  TempDir dir;
  write_file(dir.file("train.tsv"), mnli_tsv(1003, "train"));
  write_file(dir.file("dev_matched.tsv"), mnli_tsv(4, "matched"));
  write_file(dir.file("dev_mismatched.tsv"), mnli_tsv(3, "mismatched"));
  DataOptions o;
  o.data_dir = dir.path();
  EXPECT_EQ(load_split("mnli", "train", o).size(), 1003u);  // §9 #2: no carve-out
  const auto val = load_split("mnli", "validation", o);
  ASSERT_EQ(val.size(), 3u);
  EXPECT_EQ(val[0].id, "mnli/validation_mismatched/0");
  const auto test = load_split("mnli", "test", o);
  ASSERT_EQ(test.size(), 4u);
  EXPECT_EQ(test[0].id, "mnli/validation_matched/0");
  // The paper's rule for large sets instead (--fix-quirks).
  o.fix_quirks = true;
  EXPECT_EQ(load_split("mnli", "train", o).size(), 3u);
  EXPECT_EQ(load_split("mnli", "validation", o).size(), 1000u);
  EXPECT_EQ(load_split("mnli", "test", o).size(), 4u);
  // Official splits: the matched and mismatched files by name.
  o.fix_quirks = false;
  o.paper_splits = false;
  EXPECT_EQ(load_split("mnli", "validation", o).size(), 4u);
  EXPECT_EQ(load_split("mnli", "validation_mismatched", o).size(), 3u);
}

TEST(TasksSplit, RecordSplitsQueriesThenExpandsAnswers) {
  TempDir dir;
  std::string lines;
  for (int i = 0; i < 1002; ++i) {
    // Passage "X Y": entities X (0-0) and Y (2-2); query i answered by X, and also Y when i is odd.
    lines +=
        R"({"idx": )" + std::to_string(i) +
        R"(, "passage": {"text": "X Y", "entities": [{"start": 0, "end": 0}, {"start": 2, "end": 2}]}, )" +
        R"("qas": [{"query": "q @placeholder", "idx": )" + std::to_string(i) +
        R"(, "answers": [{"start": 0, "end": 0, "text": "X"})" +
        (i % 2 ? std::string(R"(, {"start": 2, "end": 2, "text": "Y"})") : std::string()) +
        "]}]}\n";
  }
  write_file(dir.file("train.jsonl"), lines);
  DataOptions o;
  o.data_dir = dir.path();
  const std::vector<int64_t> p = permutation(1002, 42);
  const auto val = load_split("record", "validation", o);
  size_t expected_rows = 0;
  for (size_t i = 0; i < 1000; ++i) expected_rows += p[i] % 2 ? 2 : 1;
  EXPECT_EQ(val.size(), expected_rows);
  EXPECT_EQ(val[0].id, "record/train/" + std::to_string(p[0]) + "#0");
  const auto train = load_split("record", "train", o);
  size_t train_rows = (p[1000] % 2 ? 2 : 1) + (p[1001] % 2 ? 2 : 1);
  EXPECT_EQ(train.size(), train_rows);
}

}  // namespace
}  // namespace compacter::tasks

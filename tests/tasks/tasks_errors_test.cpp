// Bad input (issue #4): every kind is an Error naming the file, the 1-based line, the field and
// what was expected; with skip_invalid the row is skipped and counted instead.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/tasks/tasks.h"
#include "support/test_support.h"

namespace compacter::tasks {
namespace {

using ::compacter::testing::TempDir;
using ::compacter::testing::write_file;

const char* kRteHeader = "index\tsentence1\tsentence2\tlabel\n";

// The message of the Error load_split throws ("" when it does not throw).
std::string error_of(const std::string& task, const std::string& split, const DataOptions& o) {
  try {
    load_split(task, split, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

DataOptions in(const TempDir& dir) {
  DataOptions o;
  o.data_dir = dir.path();
  o.paper_splits = false;
  return o;
}

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

TEST(TasksErrors, WrongColumnCount) {
  TempDir dir;
  write_file(dir.file("train.tsv"), std::string(kRteHeader) + "0\ta\tb\tentailment\n1\ta\tb\n");
  const std::string e = error_of("rte", "train", in(dir));
  EXPECT_HAS(e, dir.file("train.tsv") + ":3:");
  EXPECT_HAS(e, "expected 4 tab-separated columns (index, sentence1, sentence2, label), found 3");
}

TEST(TasksErrors, MissingColumnInHeader) {
  TempDir dir;
  write_file(dir.file("train.tsv"), "index\tsentence1\tlabel\n0\ta\tentailment\n");
  const std::string e = error_of("rte", "train", in(dir));
  EXPECT_HAS(e, dir.file("train.tsv") + ":1: missing column \"sentence2\"");
}

TEST(TasksErrors, UnknownLabels) {
  TempDir dir;
  write_file(dir.file("train.tsv"), std::string(kRteHeader) + "0\ta\tb\tmaybe\n");
  std::string e = error_of("rte", "train", in(dir));
  EXPECT_HAS(e, dir.file("train.tsv") + ":2:");
  EXPECT_HAS(e, "unknown label \"maybe\"");
  EXPECT_HAS(e, "\"not_entailment\"");

  TempDir cola;
  write_file(cola.file("train.tsv"), "gj04\t1\t\tFine.\ngj04\t7\t\tBad.\n");
  e = error_of("cola", "train", in(cola));
  EXPECT_HAS(
      e, cola.file("train.tsv") + ":2: column \"label\": unknown label \"7\" (expected 0 or 1)");

  TempDir cb;
  write_file(cb.file("train.jsonl"),
             "{\"premise\": \"p\", \"hypothesis\": \"h\", \"label\": \"perhaps\", \"idx\": 0}\n");
  e = error_of("cb", "train", in(cb));
  EXPECT_HAS(e, cb.file("train.jsonl") + ":1: field \"label\": unknown label \"perhaps\"");

  TempDir hf;
  write_file(hf.file("train.jsonl"), "{\"premise\": \"p\", \"hypothesis\": \"h\", \"label\": 5}\n");
  e = error_of("cb", "train", in(hf));
  EXPECT_HAS(e, ":1: field \"label\": unknown label 5 (expected 0..2 or -1");

  TempDir stsb;
  write_file(stsb.file("train.tsv"), "sentence1\tsentence2\tscore\na\tb\thigh\n");
  e = error_of("stsb", "train", in(stsb));
  EXPECT_HAS(e, ":2: column \"score\": expected a similarity score, found \"high\"");
}

TEST(TasksErrors, BadJson) {
  TempDir dir;
  write_file(
      dir.file("train.jsonl"),
      "{\"premise\": \"p\", \"hypothesis\": \"h\", \"label\": \"neutral\"}\n{\"premise\": \n");
  const std::string e = error_of("cb", "train", in(dir));
  EXPECT_HAS(e, dir.file("train.jsonl") + ":2: bad JSON (expected one JSON object per line)");

  TempDir arr;
  write_file(arr.file("train.jsonl"), "[1, 2]\n");
  EXPECT_HAS(error_of("cb", "train", in(arr)), ":1: expected a JSON object, found an array");
}

TEST(TasksErrors, MissingAndMistypedFields) {
  TempDir dir;
  write_file(dir.file("train.jsonl"), "{\"premise\": \"p\", \"label\": \"neutral\", \"idx\": 0}\n");
  EXPECT_HAS(error_of("cb", "train", in(dir)),
             dir.file("train.jsonl") + ":1: missing field \"hypothesis\"");
  TempDir typed;
  write_file(typed.file("train.jsonl"),
             "{\"premise\": 3, \"hypothesis\": \"h\", \"label\": \"neutral\"}\n");
  EXPECT_HAS(error_of("cb", "train", in(typed)),
             ":1: field \"premise\": expected a string, found an integer");
  TempDir mrc;
  write_file(mrc.file("val.jsonl"), "{\"idx\": 0, \"passage\": {\"text\": \"t\"}}\n");
  EXPECT_HAS(error_of("multirc", "validation", in(mrc)), ":1: missing field \"questions\"");
}

TEST(TasksErrors, InvalidUtf8) {
  TempDir dir;
  write_file(
      dir.file("train.tsv"),
      std::string(kRteHeader) + "0\ta\tb\tentailment\n1\tbad \xC3\x28 text\tb\tentailment\n");
  EXPECT_HAS(error_of("rte", "train", in(dir)),
             dir.file("train.tsv") + ":3: invalid UTF-8 at byte 7 of the line");
  TempDir js;
  write_file(js.file("train.jsonl"), "{\"premise\": \"\xFF\", \"hypothesis\": \"h\"}\n");
  EXPECT_HAS(error_of("cb", "train", in(js)), js.file("train.jsonl") + ":1: invalid UTF-8");
}

TEST(TasksErrors, EmptyAndMissingFiles) {
  TempDir dir;
  write_file(dir.file("train.tsv"), "");
  EXPECT_HAS(error_of("rte", "train", in(dir)), dir.file("train.tsv") + ": file is empty");
  write_file(dir.file("dev.tsv"), kRteHeader);
  EXPECT_HAS(error_of("rte", "validation", in(dir)), "file has no data rows after the header");
  TempDir js;
  write_file(js.file("train.jsonl"), "\n\n");
  EXPECT_HAS(error_of("cb", "train", in(js)), "file has no rows");
  EXPECT_HAS(error_of("rte", "test", in(dir)), "rte test: no data file found (looked for");
  DataOptions nowhere;
  nowhere.data_dir = dir.file("missing");
  EXPECT_HAS(error_of("rte", "train", nowhere), "data folder not found");
}

TEST(TasksErrors, UnknownTaskSplitAndLayout) {
  EXPECT_THROW(find_task("glue-rte"), Error);
  try {
    find_task("nope");
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "known: cola, sst2");
  }
  TempDir dir;
  EXPECT_HAS(error_of("rte", "dev", in(dir)), "unknown split 'dev'");
  EXPECT_THROW(parse_layout("tfds"), Error);
}

TEST(TasksErrors, SkipInvalidCountsTheSkippedRows) {
  TempDir dir;
  write_file(dir.file("train.tsv"), std::string(kRteHeader) +
                                        "0\ta\tb\tentailment\n"
                                        "1\ta\tb\n"
                                        "2\ta\tb\tmaybe\n"
                                        "3\tc\td\tnot_entailment\n");
  DataOptions o = in(dir);
  o.skip_invalid = true;
  int64_t skipped = 0;
  const auto rows = load_split("rte", "train", o, &skipped);
  EXPECT_EQ(skipped, 2);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].target, "1");

  TempDir js;
  write_file(js.file("train.jsonl"),
             "{\"premise\": \"p\", \"hypothesis\": \"h\", \"label\": \"neutral\"}\n"
             "not json\n"
             "{\"premise\": \"p\"}\n");
  o = in(js);
  o.skip_invalid = true;
  skipped = 0;
  EXPECT_EQ(load_split("cb", "train", o, &skipped).size(), 1u);
  EXPECT_EQ(skipped, 2);
}

TEST(TasksErrors, UserTaskProblems) {
  TempDir dir;
  write_file(dir.file("train.csv"), "text,label\n\"unclosed,pos\n");
  DataOptions o = in(dir);
  o.user.source_fields = {"text"};
  o.user.target_field = "label";
  EXPECT_HAS(error_of("user", "train", o),
             dir.file("train.csv") + ":2: a quoted field is not closed");
  write_file(dir.file("train.csv"), "body,label\nhi,pos\n");
  EXPECT_HAS(error_of("user", "train", o), dir.file("train.csv") + ":1: missing column \"text\"");
  write_file(dir.file("train.csv"), "text,label\nhi,meh\n");
  o.user.labels = {"neg", "pos"};
  EXPECT_HAS(error_of("user", "train", o),
             ":2: field \"label\": unknown label \"meh\" (expected one of neg, pos)");
  o.user.target_field = "";
  EXPECT_HAS(error_of("user", "train", o), "no target field given");
  o.user.target_field = "label";
  o.user.metrics = {"bleu"};
  EXPECT_THROW(user_task_info(o.user), Error);
}

}  // namespace
}  // namespace compacter::tasks

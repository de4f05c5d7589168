// Task-aware inputs (tasks/inputs.h) against the formats the spec writes out (§4.2, §9 #3 and
// #5) and the label tables of §4.4: a request's fields become the source text training used.
#include <gtest/gtest.h>

#include "compacter/core/error.h"
#include "compacter/tasks/inputs.h"

namespace compacter::tasks::inputs_test {

namespace {

InputFormat format(const std::string& task, bool prefix, bool fix = false) {
  InputFormat f;
  f.task = task;
  f.add_prefix = prefix;
  f.fix_quirks = fix;
  return f;
}

const Where kWhere{"line 3", 0};

}  // namespace

TEST(TaskInputs, FieldsAreWrittenAsTheSpecWritesTheTask) {
  const nlohmann::json rte = {{"sentence1", "A cat sat."}, {"sentence2", "An animal sat."}};
  EXPECT_EQ(format_fields(format("rte", true), rte, kWhere),
            "rte sentence1: A cat sat. sentence2: An animal sat.");
  EXPECT_EQ(format_fields(format("rte", false), rte, kWhere),
            "sentence1: A cat sat. sentence2: An animal sat.");
  // §9 #3: no colon after "hypothesis" in the paper's MNLI format; the corrected form has one.
  const nlohmann::json mnli = {{"premise", "P"}, {"hypothesis", "H"}, {"label", 1}};
  EXPECT_EQ(format_fields(format("mnli", true), mnli, kWhere), "mnli premise: P hypothesis H");
  EXPECT_EQ(format_fields(format("mnli", true, true), mnli, kWhere),
            "mnli premise: P hypothesis: H");
  EXPECT_EQ(format_fields(format("sst2", true), {{"sentence", "a fine film"}}, kWhere),
            "sst2 sentence: a fine film");
  EXPECT_EQ(format_fields(format("boolq", true), {{"question", "q?"}, {"passage", "p."}}, kWhere),
            "superglue-boolq question: q? passage: p.");
}

TEST(TaskInputs, MultiRcFieldsNeedNoDatasetIndex) {
  // §4.2's MultiRC format; the dataset's "idx" only groups answers for the exact-match score, so
  // a question typed for `predict` or `serve` does without it. A malformed one is still refused.
  const nlohmann::json typed = {
      {"paragraph", "Tom <b>ran</b>."}, {"question", "Who ran?"}, {"answer", "Tom"}};
  EXPECT_EQ(format_fields(format("multirc", true), typed, kWhere),
            "superglue-multirc question: Who ran? answer: Tom paragraph: Tom ran.");
  nlohmann::json bad = typed;
  bad["idx"] = 4;
  try {
    format_fields(format("multirc", true), bad, kWhere);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 3: field \"idx\": expected an object"),
              std::string::npos)
        << e.what();
  }
}

TEST(TaskInputs, UserTasksJoinTheirFields) {
  InputFormat f = format("user", true);
  f.user.name = "reviews";
  f.user.source_fields = {"title", "body"};
  f.user.target_field = "stars";
  EXPECT_EQ(format_fields(f, {{"title", "Good"}, {"body", "Very."}}, kWhere),
            "reviews title: Good body: Very.");
}

TEST(TaskInputs, MissingFieldsNameTheLineAndTheField) {
  try {
    format_fields(format("rte", false), {{"sentence1", "a"}}, kWhere);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 3: missing field \"sentence2\""), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(format_fields(format("rte", false), nlohmann::json::array(), kWhere), Error);
}

TEST(TaskInputs, OutputsMapBackToTheirLabels) {
  // §4.4: the paper's targets are label ids as strings; RTE 0 = entailment.
  EXPECT_EQ(interpret_output(format("rte", false), "0"), "entailment");
  EXPECT_EQ(interpret_output(format("rte", false), " 1 "), "not_entailment");
  EXPECT_EQ(interpret_output(format("rte", false, true), "not_entailment"), "not_entailment");
  EXPECT_TRUE(interpret_output(format("rte", false), "maybe").is_null());
  EXPECT_EQ(interpret_output(format("cb", false), "2"), "neutral");
  EXPECT_DOUBLE_EQ(interpret_output(format("stsb", true), "3.8").get<double>(), 3.8);
  EXPECT_TRUE(interpret_output(format("stsb", true), "high").is_null());
  InputFormat user = format("user", true);
  user.user.labels = {"pos", "neg"};
  EXPECT_EQ(interpret_output(user, "neg"), "neg");
  EXPECT_TRUE(interpret_output(user, "meh").is_null());
}

TEST(TaskInputs, TheRecordRoundTripsAndIsReadStrictly) {
  InputFormat f = format("user", false, true);
  f.user.name = "n";
  f.user.source_fields = {"a"};
  f.user.target_field = "t";
  f.user.labels = {"x"};
  const nlohmann::json j = input_format_to_json(f);
  EXPECT_EQ(j["fields"], nlohmann::json({"a"}));
  const InputFormat back = input_format_from_json(j, "adapter_config.json: inputs");
  EXPECT_EQ(back.task, "user");
  EXPECT_FALSE(back.add_prefix);
  EXPECT_TRUE(back.fix_quirks);
  EXPECT_EQ(back.user.source_fields, f.user.source_fields);
  EXPECT_EQ(back.user.labels, f.user.labels);
  nlohmann::json bad = input_format_to_json(format("rte", true));
  bad["prefix"] = true;
  EXPECT_THROW(input_format_from_json(bad, "x"), Error);
  bad = input_format_to_json(format("rte", true));
  bad["task"] = "nosuchtask";
  EXPECT_THROW(input_format_from_json(bad, "x"), Error);
}

}  // namespace compacter::tasks::inputs_test

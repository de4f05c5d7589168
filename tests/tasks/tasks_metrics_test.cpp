// Metrics of spec §5.2 on cases computed by hand (the arithmetic is in the comments): invalid
// predictions, constant predictions, ties, unparsable floats, groups, SQuAD normalisation, the
// selection key and the paper's "Avg".
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/tasks/metrics.h"
#include "compacter/tasks/tasks.h"
#include "compacter/tasks/text.h"

namespace compacter::tasks {
namespace {

using S = std::vector<std::string>;
constexpr double kTol = 1e-9;

TEST(TasksMetrics, Accuracy) {
  EXPECT_NEAR(metrics::accuracy({"1", "0", "1", "1"}, {"1", "1", "x", "1"}), 50.0, kTol);
  EXPECT_THROW(metrics::accuracy({"1"}, {"1", "0"}), Error);
  EXPECT_THROW(metrics::accuracy({}, {}), Error);
}

TEST(TasksMetrics, BinaryF1FlipsInvalidPredictions) {
  // Spec §11: "x" becomes the opposite of gold "0", i.e. "1": TP 1, FP 1 -> 2/3.
  EXPECT_NEAR(metrics::binary_f1({"1", "0"}, {"1", "x"}), 200.0 / 3, kTol);
  // Invalid against gold "1" becomes "0": TP 1, FN 1 -> 2/3.
  EXPECT_NEAR(metrics::binary_f1({"1", "1", "0"}, {"yes", "1", "0"}), 200.0 / 3, kTol);
  // "2" against gold "0" -> "1": TP 2, FP 1 -> 4/5.
  EXPECT_NEAR(metrics::binary_f1({"0", "1", "1"}, {"2", "1", "1"}), 80.0, kTol);
  // Constant predictions: all "0" -> no TP -> 0; all "1" -> TP 2, FP 2 -> 4/6.
  EXPECT_NEAR(metrics::binary_f1({"1", "0", "1", "0"}, {"0", "0", "0", "0"}), 0.0, kTol);
  EXPECT_NEAR(metrics::binary_f1({"1", "0", "1", "0"}, {"1", "1", "1", "1"}), 200.0 / 3, kTol);
  EXPECT_NEAR(metrics::binary_f1({"0", "0"}, {"0", "0"}), 0.0, kTol);  // no positives at all
  EXPECT_THROW(metrics::binary_f1({"2"}, {"1"}), Error);               // gold must be 0/1
}

TEST(TasksMetrics, MatthewsOnStrings) {
  // TP 1, FN 1, TN 2, FP 0: (1*2 - 0) / sqrt(1*2*2*3) = 2/sqrt(12).
  EXPECT_NEAR(metrics::matthews({"1", "1", "0", "0"}, {"1", "0", "0", "0"}),
              100.0 * 2 / std::sqrt(12.0), kTol);
  // An invalid prediction is a third class: cov_tp = 3*4 - (2*2 + 2*1) = 6,
  // cov_pp = 16 - (4 + 1 + 1) = 10, cov_tt = 16 - 8 = 8 -> 6 / sqrt(80).
  EXPECT_NEAR(metrics::matthews({"1", "1", "0", "0"}, {"1", "x", "0", "0"}),
              100.0 * 6 / std::sqrt(80.0), kTol);
  EXPECT_NEAR(metrics::matthews({"1", "1", "0", "0"}, {"1", "1", "1", "1"}), 0.0, kTol);
  EXPECT_NEAR(metrics::matthews({"1", "0"}, {"1", "0"}), 100.0, kTol);
  EXPECT_NEAR(metrics::matthews({"1", "0"}, {"0", "1"}), -100.0, kTol);
}

TEST(TasksMetrics, PearsonWithUnparsablePrediction) {
  // pred "x" -> -1: x dev (-1, 0, 1), y = (1, 2, -1) dev (1/3, 4/3, -5/3);
  // Sxy = -2, Sxx = 2, Syy = 42/9 -> r = -2 / sqrt(84/9).
  EXPECT_NEAR(metrics::pearson({"1", "2", "3"}, {"1", "2", "x"}), -100.0 * 2 / std::sqrt(84.0 / 9),
              1e-9);
  EXPECT_NEAR(metrics::pearson({"1", "2", "3"}, {"2.5", "2.5", "2.5"}), 0.0, kTol);  // NaN -> 0
  EXPECT_NEAR(metrics::pearson({"1.0", "2.0", "4.0"}, {" 2", "4", "8e0"}), 100.0, 1e-9);
  EXPECT_NEAR(metrics::pearson({"1", "2", "3"}, {"1", "nan", "3"}), 0.0, kTol);
}

TEST(TasksMetrics, SpearmanUsesAverageRanksForTies) {
  // pred ranks (1.5, 1.5, 3, 4) vs (1, 2, 3, 4): Sxy = 4.5, Sxx = 5, Syy = 4.5.
  EXPECT_NEAR(metrics::spearman({"1", "2", "3", "4"}, {"1", "1", "2", "3"}),
              100.0 * 4.5 / std::sqrt(22.5), 1e-9);
  // "x" -> -1 ranks lowest: pred ranks (3, 1, 2) vs (1, 2, 3): r = -1 / 2.
  EXPECT_NEAR(metrics::spearman({"1", "2", "3"}, {"3", "x", "2"}), -50.0, 1e-9);
  EXPECT_NEAR(metrics::spearman({"1", "2", "3"}, {"4", "4", "4"}), 0.0, kTol);
  EXPECT_NEAR(metrics::spearman({"1", "5", "9"}, {"10", "20", "300"}), 100.0, 1e-9);
}

TEST(TasksMetrics, MacroF1CountsAMissingClassAsZero) {
  // class 0: TP 1, FN 1 -> 2/3; class 1: TP 1, FP 2 -> 1/2; class 2: never predicted -> 0.
  EXPECT_NEAR(metrics::macro_f1({"0", "0", "1", "2"}, {"0", "1", "1", "1"}, {"0", "1", "2"}),
              100.0 * (2.0 / 3 + 0.5) / 3, kTol);
  EXPECT_NEAR(metrics::macro_f1({"0", "1"}, {"x", "1"}, {"0", "1", "2"}), 100.0 / 3, kTol);
}

TEST(TasksMetrics, GroupExactMatch) {
  // groups a (equal), b (one wrong), c (equal) -> 2/3.
  EXPECT_NEAR(metrics::group_exact_match({"1", "0", "1", "1", "0"}, {"1", "0", "1", "0", "0"},
                                         {"a", "a", "b", "b", "c"}),
              200.0 / 3, kTol);
  // Rows without a group key form one group (the empty key).
  EXPECT_NEAR(metrics::group_exact_match({"1", "0"}, {"1", "1"}, {"", ""}), 0.0, kTol);
  EXPECT_THROW(metrics::group_exact_match({}, {}, {}), Error);
  EXPECT_THROW(metrics::group_exact_match({"1"}, {"1"}, {}), Error);
}

TEST(TasksMetrics, SquadNormalisationAndMaxOverAnswers) {
  EXPECT_EQ(metrics::normalize_squad("The Eiffel-Tower!"), "eiffeltower");
  EXPECT_EQ(metrics::normalize_squad("An  apple a day"), "apple day");
  EXPECT_EQ(metrics::normalize_squad("theater"), "theater");
  EXPECT_EQ(metrics::normalize_squad("A.B"), "ab");
  EXPECT_EQ(metrics::normalize_squad("\xC3\x89"
                                     "COLE the"),
            "\xC3\xA9"
            "cole");  // ÉCOLE
  // Row 1: "big red dog" vs "red dog": P 2/3, R 1 -> F1 0.8, EM 0. Row 2: "cat" = "cat".
  const auto m = metrics::squad({{"red dog", "cat"}, {"cat"}}, {"the big red dog", "Cat."});
  EXPECT_NEAR(m.at("em"), 50.0, kTol);
  EXPECT_NEAR(m.at("f1"), 90.0, kTol);
  EXPECT_NEAR(metrics::squad({{}}, {"x"}).at("f1"), 0.0, kTol);  // no gold answers
  // Repeated tokens count as a multiset: "a b b" vs "b": overlap 1, P 1/3, R 1 -> 0.5.
  EXPECT_NEAR(metrics::squad({{"b"}}, {"x b b"}).at("f1"), 100.0 * 2 * (1.0 / 3) / (4.0 / 3), kTol);
}

Example ref(const std::string& id, const std::string& target, const std::string& group = "") {
  return {id, "", target, {target}, group};
}

TEST(TasksMetrics, ScoreByTask) {
  auto m = score("mrpc", {" 1 ", "x", "0"}, {ref("a", "1"), ref("b", "0"), ref("c", "0")});
  EXPECT_NEAR(m.at("accuracy"), 200.0 / 3, kTol);  // predictions are stripped
  EXPECT_NEAR(m.at("f1"), 200.0 / 3, kTol);        // x -> 1: TP 1, FP 1
  EXPECT_NEAR(selection_value("mrpc", m), 200.0 / 3, kTol);
  m = score("multirc", {"1", "0", "1"},
            {ref("a", "1", "7"), ref("b", "1", "7"), ref("c", "1", "8")});
  EXPECT_NEAR(m.at("em"), 50.0, kTol);
  EXPECT_NEAR(m.at("f1"), 80.0, kTol);                            // TP 2, FN 1
  EXPECT_THROW(score("multirc", {"1"}, {ref("a", "1")}), Error);  // no group
  const Example r1{"r1", "", "Paris", {"Paris", "Seine"}, "9"};
  const Example r2{"r2", "", "Seine", {"Paris", "Seine"}, "9"};
  m = score("record", {"seine", "the Seine"}, {r1, r2});
  EXPECT_NEAR(m.at("em"), 100.0, kTol);
  EXPECT_THROW(score("rte", {"1"}, {ref("a", "")}), Error);  // unlabeled reference
  EXPECT_THROW(score("rte", {"1", "0"}, {ref("a", "1")}), Error);
  m = score("cb", {"0", "1"}, {ref("a", "0"), ref("b", "2")});
  EXPECT_NEAR(m.at("accuracy"), 50.0, kTol);
  EXPECT_NEAR(m.at("macro_f1"), 100.0 / 3, kTol);
}

TEST(TasksMetrics, ScoreWithLabelWords) {
  // --fix-quirks targets are label words; a bare id is then an invalid prediction.
  const auto m =
      score("mrpc", {"equivalent", "1"}, {ref("a", "equivalent"), ref("b", "not_equivalent")});
  EXPECT_NEAR(m.at("accuracy"), 50.0, kTol);
  EXPECT_NEAR(m.at("f1"), 200.0 / 3, kTol);
}

TEST(TasksMetrics, SelectionAndPaperAverage) {
  EXPECT_NEAR(selection_value("stsb", {{"pearson", 80.0}, {"spearman", 90.0}}), 85.0, kTol);
  EXPECT_NEAR(selection_value("cola", {{"mcc", 60.0}}), 60.0, kTol);
  EXPECT_THROW(selection_value("stsb", {{"pearson", 80.0}}), Error);
  // T5-base GLUE row of Table 1: 951.48 / 11 = 86.498...
  EXPECT_NEAR(
      paper_average({61.76, 94.61, 90.20, 93.06, 91.63, 88.84, 89.68, 89.97, 86.78, 93.01, 71.94}),
      951.48 / 11, 1e-9);
}

TEST(TasksMetrics, PythonFloatParsingAndPrinting) {
  EXPECT_EQ(text::parse_python_float(" 3.5 ").value(), 3.5);
  EXPECT_EQ(text::parse_python_float("-1e2").value(), -100.0);
  EXPECT_EQ(text::parse_python_float(".5").value(), 0.5);
  EXPECT_EQ(text::parse_python_float("5.").value(), 5.0);
  EXPECT_TRUE(std::isinf(text::parse_python_float("Infinity").value()));
  for (const char* bad : {"", "x", "1.2.3", "1e", "e5", "0x10", "--1", "1 2"})
    EXPECT_FALSE(text::parse_python_float(bad).has_value()) << bad;
  EXPECT_EQ(text::python_float_str(3.8), "3.8");
  EXPECT_EQ(text::python_float_str(5.0), "5.0");
  EXPECT_EQ(text::python_float_str(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(text::python_float_str(1e-5), "1e-05");
  EXPECT_EQ(text::python_float_str(1e16), "1e+16");
  EXPECT_EQ(text::python_float_str(123.0), "123.0");
}

}  // namespace
}  // namespace compacter::tasks

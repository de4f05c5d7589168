// The rows of `compacter params` (peft/parameter_report.h) against the paper's Table 1 as the
// spec (§7) reproduces it: "#Total params" = 1 + T * added / backbone for the methods that add
// to a shared backbone, T for full fine-tuning (one whole model per task), T = 8 for GLUE.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <map>

#include "compacter/io/t5_config.h"
#include "compacter/peft/parameter_report.h"

namespace compacter::peft::parameter_report_test {

namespace {

nlohmann::json row_of(const std::string& method, int64_t tasks, int64_t n = 0) {
  T5Config c = resolve_t5_config("t5-base");
  c.vocab_size = 32100;  // the tokenizer's size (spec §7.1)
  PeftOptions o = method_defaults(method);
  if (n > 0) o.n = n;
  return parameter_row(c, method, o, tasks);
}

// Rounds to `digits` decimals, as the spec's tables print.
double rounded(double v, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(v * scale) / scale;
}

}  // namespace

TEST(ParameterReport, FullFineTuningNeedsOneModelPerTask) {
  const nlohmann::json r = row_of("full", 8);
  EXPECT_EQ(r["trainable"].get<int64_t>(), r["backbone"].get<int64_t>());
  EXPECT_DOUBLE_EQ(r["total_params"].get<double>(), 8.0);
  EXPECT_DOUBLE_EQ(row_of("full", 6)["total_params"].get<double>(), 6.0);
}

TEST(ParameterReport, AddedMethodsShareTheBackbone) {
  // spec §7, t5-base: Adapter 1,855,104 -> 1.0649 (x8); Compacter++ n = 4 104,704 -> 1.0020;
  // BitFit 280,932 -> 1.0101; and x6 for SuperGLUE: Adapter 1.0487.
  EXPECT_NEAR(row_of("adapter", 8)["total_params"].get<double>(), 1.0649, 5e-5);
  EXPECT_NEAR(row_of("adapter", 6)["total_params"].get<double>(), 1.0487, 5e-5);
  const nlohmann::json cpp = row_of("compacter++", 8);
  EXPECT_EQ(cpp["trainable"].get<int64_t>(), 104704);
  EXPECT_NEAR(cpp["total_params"].get<double>(), 1.0020, 5e-5);
  EXPECT_NEAR(row_of("bitfit", 8)["total_params"].get<double>(), 1.0101, 5e-5);
}

TEST(ParameterReport, TableNamesTheShapeAndEveryRow) {
  T5Config c = resolve_t5_config("t5-base");
  c.vocab_size = 32100;
  nlohmann::json rows = nlohmann::json::array();
  rows.push_back(row_of("full", 8));
  rows.push_back({{"method", "phm"}, {"error", "n does not divide d"}});
  const std::string table = format_parameter_table("t5-base", c, rows, 8);
  EXPECT_NE(table.find("model t5-base (vocabulary 32100 rows), backbone 222882048 parameters"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("  8.0000"), std::string::npos) << table;
  EXPECT_NE(table.find("phm          n/a: n does not divide d"), std::string::npos) << table;
}

TEST(ParameterReport, PhmAndCompacterAtEveryN) {
  // spec §7.3: PHM n = 4 / 8 / 12, Compacter and Compacter++ n = 4 / 8 / 12 on t5-base.
  const std::map<std::string, std::array<int64_t, 3>> spec = {
      {"phm", {534144, 355968, 398976}},
      {"compacter", {161728, 162176, 163392}},
      {"compacter++", {104704, 105152, 106368}}};
  const int64_t ns[3] = {4, 8, 12};
  for (const auto& [method, counts] : spec)
    for (size_t i = 0; i < 3; ++i) {
      SCOPED_TRACE(method + " n=" + std::to_string(ns[i]));
      EXPECT_EQ(row_of(method, 8, ns[i])["trainable"].get<int64_t>(), counts[i]);
    }
}

TEST(ParameterReport, SuperGlueTotalsForSixTasks) {
  // spec §7.3, "SuperGLUE #Total (x6, Tables 2 and 8)", printed to 3 decimals.
  const std::map<std::string, double> spec = {
      {"adapter", 1.049}, {"pfeiffer", 1.024}, {"adapterdrop", 1.028}, {"bitfit", 1.008}};
  for (const auto& [method, total] : spec) {
    SCOPED_TRACE(method);
    EXPECT_DOUBLE_EQ(rounded(row_of(method, 6)["total_params"].get<double>(), 3), total);
  }
  EXPECT_DOUBLE_EQ(rounded(row_of("phm", 6, 4)["total_params"].get<double>(), 3), 1.013);
}

}  // namespace compacter::peft::parameter_report_test

// The rows of `compacter params` (peft/parameter_report.h) against the paper's Table 1 as the
// spec (§7) reproduces it: "#Total params" = 1 + T * added / backbone for the methods that add
// to a shared backbone, T for full fine-tuning (one whole model per task), T = 8 for GLUE.
#include <gtest/gtest.h>

#include "compacter/io/t5_config.h"
#include "compacter/peft/parameter_report.h"

namespace compacter::peft::parameter_report_test {

namespace {

nlohmann::json row_of(const std::string& method, int64_t tasks) {
  T5Config c = resolve_t5_config("t5-base");
  c.vocab_size = 32100;  // the tokenizer's size (spec §7.1)
  return parameter_row(c, method, method_defaults(method), tasks);
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

}  // namespace compacter::peft::parameter_report_test

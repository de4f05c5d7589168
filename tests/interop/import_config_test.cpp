// interop/import_config.h: PEFT's feedforward_modules as a regular expression. What libstdc++'s
// regex compiler must not see is refused by name before it compiles (a long back-reference or
// count number overflows a signed integer in it; "{n}" is written out as n copies; lookaheads
// nest into time growing as length^depth), and patterns within the bounds are accepted and match
// as ECMAScript says.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

#include "compacter/core/error.h"
#include "compacter/interop/import_config.h"
#include "support/test_support.h"

namespace compacter {
namespace {

std::string ia3_config(const std::string& feedforward) {
  return nlohmann::json{{"peft_type", "IA3"},
                        {"task_type", "SEQ_2_SEQ_LM"},
                        {"target_modules", {"k", "v", "wo"}},
                        {"feedforward_modules", feedforward}}
      .dump();
}

std::string refusal(const std::string& feedforward) {
  return testing::error_of(
      [&] { interop::peft_import_config_from_text(ia3_config(feedforward), "a/config.json"); });
}

TEST(PeftRegexLimits, WhatLibstdcxxMustNotCompileIsRefusedByName) {
  const struct {
    std::string pattern, reason;
  } cases[] = {
      {"(w)\\1o", "back-reference (\\1)"},
      {".*\\18446744073709551615.*", "back-reference (\\18446744073709551615)"},
      {".*wo{99999999999999999999", "more than 9 digits"},
      {".*wo{1,12345678901}", "more than 9 digits"},
      {"a\\c\\{99999999999999999999}", "control escape"},
      {"[\\c\\]?.*{20000}x", "control escape"},
      {".*(?=.*(?=.*z))", "lookahead"},
      {".*(?!x)wo", "lookahead"},
      {".*{9760}eluDense\\.wf$", "repeats too much"},
      {".*(){25000}x", "repeats too much"},
      {".*(|){300}x", "repeats too much"},
      {"((a{30}){30}){30}", "repeats too much"},
  };
  for (const auto& c : cases) {
    const std::string m = refusal(c.pattern);
    EXPECT_NE(m.find("a/config.json: feedforward_modules"), std::string::npos) << c.pattern << m;
    EXPECT_NE(m.find(c.reason), std::string::npos) << c.pattern << ": " << m;
  }
}

TEST(PeftRegexLimits, PatternsWithinTheBoundsMatchWholePaths) {
  const auto config = [](const std::string& p) {
    return interop::peft_import_config_from_text(ia3_config(p), "a/config.json");
  };
  const auto c = config("(en|de)coder\\.block\\.[0-9]{1,3}\\.layer\\.[12]\\.DenseReluDense\\.wo");
  EXPECT_TRUE(c.feedforward("decoder.block.11.layer.2.DenseReluDense.wo", "t5"));
  EXPECT_FALSE(c.feedforward("decoder.block.1234.layer.2.DenseReluDense.wo", "t5"));
  EXPECT_FALSE(c.feedforward("encoder.block.0.layer.0.SelfAttention.k", "t5"));
  // 256 atoms written out are accepted, 257 are not.
  EXPECT_TRUE(config("(.*){254}wo").feedforward("encoder.block.0.layer.1.DenseReluDense.wo", "t5"));
  EXPECT_NE(refusal("(.*){255}wo").find("more than 256 atoms"), std::string::npos);
  EXPECT_NE(refusal(std::string(300, 'w')).find("more than 256 atoms"), std::string::npos);
  // A brace inside a class is a character, not a count.
  EXPECT_TRUE(config("[{}]?.*wo").feedforward("x.wo", "t5"));
}

}  // namespace
}  // namespace compacter

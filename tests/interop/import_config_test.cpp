// interop/import_config.h: PEFT's feedforward_modules as a regular expression, read with Python's
// syntax (python_regex.h; its own test compares it with CPython's re): a refusal names the file,
// the key and the reason; patterns within the bounds match whole module paths.
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

TEST(PeftRegexLimits, RefusalsNameTheFileTheKeyAndTheReason) {
  const struct {
    std::string pattern, reason;
  } cases[] = {
      // The fuzzer's findings against the std::regex reader this one replaced.
      {".*\\18446744073709551615.*", "back-reference (\\18446744073709551615)"},
      {".*{9760}eluDense\\.wf$", "multiple repeat at position 2"},
      {".*wo{1,12345678901}", "the repetition number is too large"},
      {".*(?=.*(?=.*z))", "lookaround"},
      {".*(){25000}x", "more than 1024 states"},
      {"((a{30}){30}){30}", "more than 1024 states"},
      {"(wo", "missing ), unterminated subpattern at position 0"},
  };
  for (const auto& c : cases) {
    const std::string m = refusal(c.pattern);
    EXPECT_NE(m.find("a/config.json: feedforward_modules"), std::string::npos) << c.pattern << m;
    EXPECT_NE(m.find(c.reason), std::string::npos) << c.pattern << ": " << m;
  }
  EXPECT_NE(refusal(std::string(1025, 'w')).find("at most 1024 are read"), std::string::npos);
}

TEST(PeftRegexLimits, PatternsWithinTheBoundsMatchWholePathsAsPythonDoes) {
  const auto config = [](const std::string& p) {
    return interop::peft_import_config_from_text(ia3_config(p), "a/config.json");
  };
  const auto c = config("(en|de)coder\\.block\\.[0-9]{1,3}\\.layer\\.[12]\\.DenseReluDense\\.wo");
  EXPECT_TRUE(c.feedforward("decoder.block.11.layer.2.DenseReluDense.wo", "t5"));
  EXPECT_FALSE(c.feedforward("decoder.block.1234.layer.2.DenseReluDense.wo", "t5"));
  EXPECT_FALSE(c.feedforward("encoder.block.0.layer.0.SelfAttention.k", "t5"));
  // Python's syntax, which ECMAScript's lacks: named groups, {,n}, \Z.
  const auto named = config("(?P<stack>encoder|decoder)\\.block\\.\\d{,2}\\..*\\.wo\\Z");
  EXPECT_TRUE(named.feedforward("encoder.block.3.layer.1.DenseReluDense.wo", "t5"));
  EXPECT_FALSE(named.feedforward("encoder.block.3.layer.1.DenseReluDense.wi", "t5"));
  // 1,024 states written out are accepted, 1,025 are not.
  EXPECT_TRUE(config("(.*){510}wo").feedforward("encoder.block.0.layer.1.DenseReluDense.wo", "t5"));
  EXPECT_NE(refusal("(.*){511}wo").find("more than 1024 states"), std::string::npos);
  // A brace inside a class is a character, not a count.
  EXPECT_TRUE(config("[{}]?.*wo").feedforward("x.wo", "t5"));
}

}  // namespace
}  // namespace compacter

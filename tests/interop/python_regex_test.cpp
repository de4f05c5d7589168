// interop/python_regex.h against CPython's own `re` (tests/fixtures/python_re/cases.json, written
// by make_python_re_fixtures.py): every pattern Python refuses is refused; every pattern Python
// accepts is accepted (unless it uses what is refused here by name: then "not supported") and
// re.fullmatch's answer on every text is ours. Then the bound on states, and time on the patterns
// a backtracking matcher takes exponential time on.
#include "compacter/interop/python_regex.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

#include "compacter/core/error.h"
#include "support/test_support.h"

namespace compacter::interop {
namespace {

nlohmann::json python_cases() {
  const std::string path =
      std::string(COMPACTER_SOURCE_DIR) + "/tests/fixtures/python_re/cases.json";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return nlohmann::json::parse(in);
}

std::string refusal(const std::string& pattern, size_t max_states = 1024) {
  return testing::error_of([&] { PythonRegex(pattern, max_states); });
}

TEST(PythonRegex, AgreesWithCPythonOnEveryFixturePattern) {
  const nlohmann::json all = python_cases();
  const std::vector<std::string> texts = all.at("texts");
  const std::vector<std::string> paths = all.at("module_paths");
  size_t refused = 0, matched = 0, unsupported = 0;
  for (const nlohmann::json& c : all.at("cases")) {
    const std::string pattern = c.at("pattern");
    if (c.contains("error")) {
      EXPECT_NE(refusal(pattern), "") << "Python refuses \"" << pattern << "\": " << c["error"];
      ++refused;
      continue;
    }
    if (c.value("unsupported", false)) {
      EXPECT_NE(refusal(pattern).find("not supported"), std::string::npos) << pattern;
      ++unsupported;
      continue;
    }
    std::optional<PythonRegex> re;
    try {
      re.emplace(pattern, 1024);
    } catch (const Error& e) {
      ADD_FAILURE() << "Python accepts \"" << pattern << "\"; refused: " << e.what();
      continue;
    }
    const std::string want = c.at("matches");
    for (size_t t = 0; t < texts.size(); ++t) {
      EXPECT_EQ(re->full_match(texts[t]), want[t] == '1')
          << "re.fullmatch(\"" << pattern << "\", " << nlohmann::json(texts[t]).dump() << ")";
      ++matched;
    }
    if (c.contains("path_matches")) {
      const std::string want_paths = c["path_matches"];
      for (size_t t = 0; t < paths.size(); ++t)
        EXPECT_EQ(re->full_match(paths[t]), want_paths[t] == '1')
            << "re.fullmatch(\"" << pattern << "\", \"" << paths[t] << "\")";
    }
  }
  // The fixture exercises each outcome (a truncated file would pass vacuously).
  EXPECT_GT(refused, 300u);
  EXPECT_GT(unsupported, 10u);
  EXPECT_GT(matched, 10000u);
}

TEST(PythonRegex, RefusalsGivePythonsReasonAndPosition) {
  const struct {
    std::string pattern, message;
  } cases[] = {
      {"*a", "nothing to repeat at position 0"},
      {"^*", "nothing to repeat at position 1"},
      {"a**", "multiple repeat at position 2"},
      {"a{2}{3}", "multiple repeat at position 4"},
      {"(a", "missing ), unterminated subpattern at position 0"},
      {"a)", "unbalanced parenthesis at position 1"},
      {"[a-", "unterminated character set at position 0"},
      {"[z-a]", "bad character range z-a at position 1"},
      {"\\q", "bad escape \\q at position 0"},
      {"a\\", "bad escape (end of pattern) at position 1"},
      {"\\x4g", "incomplete escape \\x4 at position 0"},
      {"a{3,2}", "min repeat greater than max repeat at position 2"},
      {"(?P<1a>a)", "bad character in group name '1a' at position 4"},
      {"(a)(?P<n>b)(?P<n>c)",
       "redefinition of group name 'n' as group 3; was group 2 at position 15"},
      {"(?Px)", "unknown extension ?Px at position 1"},
      {"(?\\d)", "unknown extension ?\\d at position 1"},
      {"(?P<", "missing group name at position 4"},
      {"(?P<n\\>a", "missing >, unterminated name at position 4"},
      {"(a)\\1", "back-reference (\\1) at position 3, which is not supported"},
      {".*(?=wo)", "lookaround"},
      {"a*+", "possessive"},
      {"(?i)wo", "inline flag"},
      {"é", "beyond ASCII"},
  };
  for (const auto& c : cases)
    EXPECT_NE(refusal(c.pattern).find(c.message), std::string::npos)
        << c.pattern << ": " << refusal(c.pattern);
}

TEST(PythonRegex, RepetitionsAreBoundedWrittenOut) {
  // (.*){n}wo: n copies of a character state and a fork, "w", "o", the match state.
  EXPECT_EQ(PythonRegex("(.*){10}wo", 1024).states(), 10u * 2 + 3);
  EXPECT_NO_THROW(PythonRegex("(.*){510}wo", 1024));
  EXPECT_NE(refusal("(.*){511}wo").find("more than 1024 states"), std::string::npos);
  EXPECT_NE(refusal("((a{30}){30}){30}").find("more than 1024 states"), std::string::npos);
  EXPECT_NE(refusal("(?:){5000}").find("more than 1024 states"), std::string::npos);
  EXPECT_NE(refusal("a{4294967294}").find("more than 1024 states"), std::string::npos);
  EXPECT_NE(refusal(std::string(70, '(') + std::string(70, ')')).find("nested more than 64"),
            std::string::npos);
}

TEST(PythonRegex, PatternsThatBacktrackForAgesMatchInLinearTime) {
  // A backtracking matcher (Python's, ECMAScript's) takes 2^n steps on these; following all
  // states at once takes n times the states. A few milliseconds each, even under sanitizers.
  const std::string text(5000, 'a');
  EXPECT_FALSE(PythonRegex("(a|a)*b", 1024).full_match(text));
  EXPECT_FALSE(PythonRegex("(a*)*b", 1024).full_match(text));
  EXPECT_FALSE(PythonRegex("(.*){500}b", 1024).full_match(std::string(200, 'a')));
  EXPECT_TRUE(PythonRegex("(a|aa)*", 1024).full_match(text));
}

}  // namespace
}  // namespace compacter::interop

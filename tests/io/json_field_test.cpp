// core/json_field.h: field_or reads an optional field of a JSON object from a file, or refuses a
// mistyped one with compacter::Error naming the place and the key (nlohmann's value() would
// throw its own type_error, unnamed, past our errors).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

#include "compacter/core/error.h"
#include "compacter/core/json_field.h"
#include "support/test_support.h"

namespace compacter {
namespace {

using nlohmann::json;
using testing::error_of;

TEST(JsonField, AbsentOrNullGivesTheFallbackAndAPresentValueItself) {
  const json j = json::parse(R"({"type": "train", "loss": 2.5, "step": 7, "flag": false,
                                  "none": null})");
  EXPECT_EQ(field_or(j, "type", "", "m.jsonl:1"), "train");
  EXPECT_EQ(field_or(j, "missing", "eval", "m.jsonl:1"), "eval");
  EXPECT_EQ(field_or(j, "none", "x", "m.jsonl:1"), "x");
  EXPECT_EQ(field_or(j, "loss", 0.0, "m.jsonl:1"), 2.5);
  EXPECT_EQ(field_or(j, "step", 0.0, "m.jsonl:1"), 7.0);  // an integer is a number
  EXPECT_EQ(field_or(j, "step", int64_t{-1}, "m.jsonl:1"), 7);
  EXPECT_EQ(field_or(j, "flag", true, "m.jsonl:1"), false);
  EXPECT_EQ(field_or(j, "none", true, "m.jsonl:1"), true);
}

TEST(JsonField, AMistypedFieldIsAnErrorNamingThePlaceTheKeyAndTheTypeExpected) {
  const json j = json::parse(R"({"type": 3, "loss": "low", "step": 1.5, "flag": 1,
                                  "inputs": {"add_prefix": "yes"}})");
  const auto expect = [](const std::string& message, const std::string& key,
                         const std::string& expected) {
    EXPECT_NE(message.find("runs/a/metrics.jsonl:4"), std::string::npos) << message;
    EXPECT_NE(message.find("\"" + key + "\""), std::string::npos) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  };
  const std::string where = "runs/a/metrics.jsonl:4";
  expect(error_of([&] { field_or(j, "type", "", where); }), "type", "must be a string");
  expect(error_of([&] { field_or(j, "loss", 0.0, where); }), "loss", "must be a number");
  expect(error_of([&] { field_or(j, "step", int64_t{0}, where); }), "step", "an integer");
  // An integer is read only within the type's range, never cut to it.
  const json big = json::parse(R"({"n": 3000000000, "m": -1, "u": 18446744073709551615})");
  EXPECT_EQ(field_or(big, "n", int64_t{0}, where), 3000000000);
  expect(error_of([&] { field_or(big, "n", 0, where); }), "n", "an integer from -2147483648");
  expect(error_of([&] { field_or(big, "m", uint32_t{0}, where); }), "m", "an integer from 0");
  expect(error_of([&] { field_or(big, "u", int64_t{0}, where); }), "u", "an integer from");
  expect(error_of([&] { field_or(j, "flag", false, where); }), "flag", "true or false");
  expect(error_of([&] { field_or(j["inputs"], "add_prefix", true, where); }), "add_prefix",
         "true or false");
  // Only compacter::Error escapes, never nlohmann's exceptions.
  EXPECT_THROW(field_or(j, "type", "", where), Error);
}

TEST(JsonField, NotAnObjectIsAnErrorNamingThePlace) {
  for (const char* text : {"[1, 2]", "\"text\"", "4", "null"}) {
    const std::string m = error_of([&] { field_or(json::parse(text), "type", "", "f.json"); });
    EXPECT_NE(m.find("f.json: expected a JSON object"), std::string::npos) << text << ": " << m;
  }
}

}  // namespace
}  // namespace compacter

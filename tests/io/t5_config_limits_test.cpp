// The size limits of config.json (T5ConfigLimits, io/t5_config.h): every released T5 shape is
// inside them; a size above its limit, a model of more than 2^40 weights, or an integer above
// 2^63 - 1 is refused with a message naming the file, the field and the limit.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "compacter/core/error.h"
#include "compacter/io/t5_config.h"

namespace compacter {
namespace {

nlohmann::json t5_small() {
  return {{"model_type", "t5"}, {"vocab_size", 32128}, {"d_model", 512}, {"d_kv", 64},
          {"d_ff", 2048},       {"num_layers", 6},     {"num_heads", 8}};
}

std::string refusal(const nlohmann::json& j) {
  try {
    t5_config_from_json(j, "model/config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(T5ConfigLimits, ReleasedShapesPassAndOversizedOnesAreNamed) {
  // t5-11b (d_ff 65,536, 128 heads of 128) and mT5-xxl's vocabulary (250,112) are inside.
  nlohmann::json big = t5_small();
  big["d_model"] = 1024;
  big["d_ff"] = 65536;
  big["num_heads"] = 128;
  big["d_kv"] = 128;
  big["num_layers"] = 24;
  big["vocab_size"] = 250112;
  EXPECT_EQ(refusal(big), "");

  nlohmann::json wide = t5_small();
  wide["d_model"] = int64_t{1} << 32;
  std::string why = refusal(wide);
  EXPECT_NE(why.find("\"d_model\""), std::string::npos) << why;
  EXPECT_NE(why.find("262144"), std::string::npos) << why;

  nlohmann::json deep = t5_small();
  deep["num_layers"] = 5000;
  why = refusal(deep);
  EXPECT_NE(why.find("\"num_layers\""), std::string::npos) << why;

  // Each size inside its limit, the whole far above 2^40 weights.
  nlohmann::json whole = t5_small();
  whole["vocab_size"] = 4000000;
  whole["d_model"] = 200000;
  whole["d_ff"] = 200000;
  whole["num_layers"] = 1000;
  why = refusal(whole);
  EXPECT_NE(why.find("weights, above the limit"), std::string::npos) << why;

  nlohmann::json wrap = t5_small();
  wrap["d_ff"] = nlohmann::json::parse("18446744073709551615");
  why = refusal(wrap);
  EXPECT_NE(why.find("model/config.json"), std::string::npos) << why;
  EXPECT_NE(why.find("\"d_ff\""), std::string::npos) << why;
  EXPECT_NE(why.find("at most 2^63 - 1"), std::string::npos) << why;
}

}  // namespace
}  // namespace compacter

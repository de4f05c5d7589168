// Adapters know their base (peft/adapter_file.h): check_adapter_base against recorded
// identities, and the card written with every saved adapter (peft/adapter_card.h).
#include <gtest/gtest.h>

#include "compacter/core/error.h"
#include "compacter/peft/adapter_card.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "support/test_support.h"
#include "support/tiny_t5.h"

namespace compacter::peft::adapter_base_test {

namespace {

nlohmann::json config_with(const BaseIdentity& base) {
  return {{"method", "lora"}, {"base", base_identity_to_json(base)}};
}

const BaseIdentity kFlan{"google/flan-t5-base", "00000000000000aa", "1111111111111111"};
const BaseIdentity kV11{"google/t5-v1_1-base", "00000000000000bb", "1111111111111111"};

}  // namespace

TEST(AdapterBase, TheSameBasePassesSilently) {
  EXPECT_TRUE(check_adapter_base(config_with(kFlan), "a", kFlan, false).empty());
}

TEST(AdapterBase, AnotherBaseIsRefusedNamingBoth) {
  try {
    check_adapter_base(config_with(kFlan), "runs/rte/best_adapter", kV11, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("runs/rte/best_adapter"), std::string::npos) << m;
    EXPECT_NE(m.find("google/flan-t5-base"), std::string::npos) << m;
    EXPECT_NE(m.find("google/t5-v1_1-base"), std::string::npos) << m;
    EXPECT_NE(m.find("--allow-base-mismatch"), std::string::npos) << m;
  }
  const auto warnings = check_adapter_base(config_with(kFlan), "a", kV11, true);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("loading it anyway"), std::string::npos);
}

TEST(AdapterBase, AnotherTokenizerIsRefusedToo) {
  BaseIdentity other = kFlan;
  other.tokenizer = "2222222222222222";
  EXPECT_THROW(check_adapter_base(config_with(kFlan), "a", other, false), Error);
  other.tokenizer = "";  // a command without a tokenizer (forward) checks the weights only
  EXPECT_TRUE(check_adapter_base(config_with(kFlan), "a", other, false).empty());
}

TEST(AdapterBase, AnAdapterWithoutTheRecordLoadsWithAWarning) {
  const auto warnings = check_adapter_base({{"method", "lora"}}, "old", kFlan, false);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("before adapters recorded their base model"), std::string::npos);
}

TEST(AdapterBase, SavedAdaptersHaveACard) {
  testing::TempDir dir;
  nn::T5Model model = testing::tiny_t5({}, 1);
  PeftOptions o = method_defaults("lora");
  attach("lora", o, *model, 1);
  save_adapter(*model, {"lora", o, 1}, dir.path() + "/a",
               {{"task", "rte"},
                {"base", base_identity_to_json(kFlan)},
                {"command", "compacter train --method lora"}});
  update_adapter_card_scores(dir.path() + "/a", {{"validation", {{"accuracy", 61.14}}}});
  const std::string card = testing::read_file(dir.path() + "/a/README.md");
  // LoRA r = 8 on q and v of 2 + 2 blocks' attention (decoder: self and cross), d = 8, inner 8:
  // 6 attention layers x 2 targets x r (8 + 8) = 1,536.
  EXPECT_NE(card.find("| trained parameters | 1,536 |"), std::string::npos) << card;
  EXPECT_NE(card.find("lora adapter for rte, on google/flan-t5-base"), std::string::npos) << card;
  EXPECT_NE(card.find("validation accuracy 61.1"), std::string::npos) << card;
  EXPECT_NE(card.find("`compacter train --method lora`"), std::string::npos) << card;
  // A config mistyped by hand: the error names the adapter's folder and file; the card stands.
  const std::string config_file = dir.path() + "/a/adapter_config.json";
  nlohmann::json config = nlohmann::json::parse(testing::read_file(config_file));
  config["inputs"] = {{"add_prefix", "yes"}};
  testing::write_file(config_file, config.dump());
  const std::string m =
      testing::error_of([&] { update_adapter_card_scores(dir.path() + "/a", nullptr); });
  EXPECT_NE(m.find(config_file + ", \"inputs\": \"add_prefix\" must be true or false"),
            std::string::npos)
      << m;
  EXPECT_EQ(testing::read_file(dir.path() + "/a/README.md"), card);
}

TEST(AdapterBase, ACardFromAMistypedConfigIsAnErrorNamingTheField) {
  // adapter_config.json is the user's file when update_adapter_card_scores re-reads it.
  const nlohmann::json config = {{"method", "lora"},
                                 {"task", "rte"},
                                 {"inputs", {{"add_prefix", "yes"}, {"fix_quirks", false}}}};
  const std::string m = testing::error_of([&] { adapter_card(config, 1, nullptr); });
  EXPECT_NE(m.find("\"add_prefix\" must be true or false"), std::string::npos) << m;
  EXPECT_NE(m.find("adapter_config.json"), std::string::npos) << m;
  nlohmann::json fine = config;
  fine["inputs"]["add_prefix"] = false;
  EXPECT_NE(adapter_card(fine, 1, nullptr).find("without the task prefix; paper's formats"),
            std::string::npos);
}

}  // namespace compacter::peft::adapter_base_test

// Bad command-line usage exits with 2 and one clear message, for every kind: an unknown flag, a
// missing required option, a value of the wrong type, an unexpected extra argument, a value
// outside its allowed set (CLI11's checks), an invalid value found by the library (UsageError),
// an unknown method or task, options that exclude each other. Old flag spellings still work with
// a one-line note; --help shows the defaults.
#include <gtest/gtest.h>

#include "support/test_support.h"

namespace compacter {
namespace {

using testing::run_compacter;

void expect_usage_error(const std::string& args, const std::string& message) {
  SCOPED_TRACE(args);
  const auto r = run_compacter(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(UsageCli, EveryKindOfBadUsageExitsWithTwo) {
  // CLI11's parse errors.
  expect_usage_error("params --all --no-such-flag", "--no-such-flag");
  expect_usage_error("nosuchcommand", "A subcommand is required");
  expect_usage_error("train --task rte --method bitfit --out x", "--model is required");
  expect_usage_error("params --all --tasks three", "--tasks");
  expect_usage_error("params --all extra", "extra");
  expect_usage_error("bench --dtype fp16", "fp16");
  // The library's checks of option values.
  expect_usage_error("params --method bitfit --tasks 0", "--tasks must be at least 1");
  expect_usage_error("bench --batch-size 0", "--batch-size must be at least 1");
  expect_usage_error("bench --methods full,full", "full is listed twice");
  // Names that do not exist.
  expect_usage_error("params --method nosuch", "unknown method \"nosuch\"");
  expect_usage_error("data --task nosuch --data-dir . --split train", "unknown task 'nosuch'");
  // Options that exclude each other.
  expect_usage_error("params --all --method bitfit", "--all and --method exclude each other");
}

TEST(UsageCli, UnknownTaskSaysHowToUseOnesOwnFiles) {
  const auto r = run_compacter("train --model m --task wordnet --method bitfit --out x");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--task user --data-dir DIR"), std::string::npos) << r.err;
}

TEST(UsageCli, OldSpellingsWorkWithANote) {
  // bench --batch / --steps: the same checks run on the values as under the new names.
  auto r = run_compacter("bench --batch 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--batch is deprecated; use --batch-size"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--batch-size must be at least 1, got 0"), std::string::npos) << r.err;
  r = run_compacter("bench --steps=0");
  EXPECT_NE(r.err.find("--steps is deprecated; use --max-steps"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--max-steps must be at least 1, got 0"), std::string::npos) << r.err;
  // --max-length N counted the start token: N - 1 new tokens.
  r = run_compacter("predict --model m --max-length 1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--max-length must be at least 2"), std::string::npos) << r.err;
  // init-model --config is --model-config.
  testing::TempDir dir;
  r = run_compacter("init-model --config t5-small --vocab-size 64 --out " + dir.file("m"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("--config is deprecated; use --model-config"), std::string::npos);
}

TEST(UsageCli, HelpShowsDefaults) {
  const auto r = run_compacter("train --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--learning-rate FLOAT=0.003"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--group-by-length BOOL=false"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--dtype TEXT:{fp32,bf16,autocast-bf16}=fp32"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace compacter

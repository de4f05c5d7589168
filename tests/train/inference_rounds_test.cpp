// The rounds of `compacter bench --inference` (train/inference_bench.h): the order the workers
// run in, checked against the order written out by hand, and one configuration's rows of several
// rounds combined, checked against figures worked out by hand from made-up rows.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "compacter/train/inference_bench.h"

namespace compacter::train {
namespace {

using nlohmann::json;

InferenceJob job(const std::string& method, const std::string& dtype, const std::string& search,
                 int64_t batch) {
  InferenceJob j;
  j.method = method;
  j.dtype = dtype;
  j.search = search;
  j.batch = batch;
  return j;
}

std::vector<std::pair<size_t, int64_t>> pairs(const std::vector<InferenceRun>& runs) {
  std::vector<std::pair<size_t, int64_t>> out;
  for (const InferenceRun& r : runs) out.push_back({r.job, r.round});
  return out;
}

TEST(InferenceRounds, DtypesOfOneConfigurationRunTogetherAndEveryOtherRoundReverses) {
  // inference_jobs' order: method, dtype, search, batch.
  const std::vector<InferenceJob> jobs = {
      job("lora", "fp32", "greedy", 8),  // 0
      job("lora", "fp32", "greedy", 1),  // 1
      job("lora", "bf16", "greedy", 8),  // 2
      job("lora", "bf16", "greedy", 1),  // 3
      job("none", "fp32", "greedy", 8),  // 4
      job("none", "bf16", "greedy", 8),  // 5
  };
  // By hand: (lora, greedy, 8): 0, 2; (lora, greedy, 1): 1, 3; (none, greedy, 8): 4, 5.
  const std::vector<std::pair<size_t, int64_t>> one = {{0, 0}, {2, 0}, {1, 0},
                                                       {3, 0}, {4, 0}, {5, 0}};
  EXPECT_EQ(pairs(inference_run_order(jobs, 1)), one);
  std::vector<std::pair<size_t, int64_t>> three = one;
  for (size_t i : {5, 4, 3, 1, 2, 0}) three.push_back({i, 1});
  for (const auto& [i, round] : one) three.push_back({i, 2});
  EXPECT_EQ(pairs(inference_run_order(jobs, 3)), three);
}

TEST(InferenceRounds, MedianIsTheMiddleOrTheMeanOfTheMiddleTwo) {
  EXPECT_DOUBLE_EQ(median({3.0}), 3.0);
  EXPECT_DOUBLE_EQ(median({5.0, 1.0, 4.0}), 4.0);
  EXPECT_DOUBLE_EQ(median({5.0, 1.0, 4.0, 2.0}), 3.0);
  EXPECT_ANY_THROW(median({}));
}

json round_row(std::vector<double> latency, std::vector<double> first, double tps, double gflops,
               json decode, int64_t peak, int64_t resident) {
  return {{"method", "compacter++"},
          {"dtype", "fp32"},
          {"batch", 2},
          {"requests", latency.size()},
          {"latency_seconds", latency},
          {"first_token_seconds", first},
          {"tokens_generated", 2 * 4 * static_cast<int64_t>(latency.size())},
          {"tokens_per_second", tps},
          {"gflops_per_second", gflops},
          {"decode_gflops_per_second", decode},
          {"peak_memory_bytes", peak},
          {"model_resident_bytes", resident}};
}

TEST(InferenceRounds, CombinedRowPoolsTheRequestsAndTakesTheRoundsMedians) {
  const std::vector<json> rounds = {
      round_row({0.4, 0.2}, {0.1, 0.05}, 20.0, 2.0, 1.5, 700, 500),
      round_row({0.1, 0.3}, {0.02, 0.03}, 40.0, 4.0, 3.5, 900, 510),
      round_row({0.5, 0.6}, {0.2, 0.3}, 10.0, 1.0, 0.5, 800, 505),
  };
  const json c = combine_inference_rounds(rounds);
  EXPECT_EQ(c["method"], "compacter++");
  EXPECT_EQ(c["rounds"], 3);
  EXPECT_EQ(c["requests"], 6);
  EXPECT_EQ(c["tokens_generated"], 48);
  EXPECT_EQ(c["latency_seconds"], json({0.4, 0.2, 0.1, 0.3, 0.5, 0.6}));
  // Sorted: 0.1 0.2 0.3 0.4 0.5 0.6; nearest rank: p50 the 3rd, p99 the 6th.
  EXPECT_DOUBLE_EQ(c["latency_p50"].get<double>(), 0.3);
  EXPECT_DOUBLE_EQ(c["latency_p99"].get<double>(), 0.6);
  EXPECT_NEAR(c["latency_mean"].get<double>(), 2.1 / 6.0, 1e-12);
  // Sorted: 0.02 0.03 0.05 0.1 0.2 0.3.
  EXPECT_DOUBLE_EQ(c["first_token_p50"].get<double>(), 0.05);
  EXPECT_DOUBLE_EQ(c["first_token_p99"].get<double>(), 0.3);
  EXPECT_EQ(c["round_tokens_per_second"], json({20.0, 40.0, 10.0}));
  EXPECT_DOUBLE_EQ(c["tokens_per_second"].get<double>(), 20.0);
  EXPECT_DOUBLE_EQ(c["gflops_per_second"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(c["decode_gflops_per_second"].get<double>(), 1.5);
  EXPECT_EQ(c["peak_memory_bytes"], 900);
  EXPECT_EQ(c["model_resident_bytes"], 510);
}

TEST(InferenceRounds, OneRoundIsItsOwnRowAndAMissingFigureStaysMissing) {
  const json one = round_row({0.4, 0.2}, {0.1, 0.05}, 20.0, 2.0, nullptr, 700, 500);
  const json c = combine_inference_rounds({one});
  EXPECT_EQ(c["latency_seconds"], one["latency_seconds"]);
  EXPECT_DOUBLE_EQ(c["tokens_per_second"].get<double>(), 20.0);
  EXPECT_EQ(c["round_tokens_per_second"], json({20.0}));
  EXPECT_TRUE(c["decode_gflops_per_second"].is_null());
  json no_memory = one;
  no_memory["peak_memory_bytes"] = nullptr;
  no_memory["model_resident_bytes"] = nullptr;
  const json m = combine_inference_rounds({no_memory, no_memory});
  EXPECT_TRUE(m["peak_memory_bytes"].is_null());
  EXPECT_TRUE(m["model_resident_bytes"].is_null());
  EXPECT_ANY_THROW(combine_inference_rounds({}));
}

}  // namespace
}  // namespace compacter::train

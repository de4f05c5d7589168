// `compacter bench --inference` (train/inference_bench.h via tools/compacter/cmd_bench.cpp), run
// as the built program on tiny models with small numbers: the JSON document's schema and
// invariants (every configuration asked for, each once; tokens counted = rows x new tokens x
// requests; p99 >= p50 > 0, the nearest-rank percentiles of the reported latencies; the first
// token before the end of its request), the text table, the profile, and bad options refused
// with exit 2 before anything runs. No timing thresholds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "support/test_support.h"

namespace compacter {
namespace {

using ::compacter::testing::run_compacter;
using ::compacter::testing::TempDir;
using nlohmann::json;

// The median, written out.
double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

// The nearest-rank percentile, written out: the ceil(p/100 n)-th smallest.
double nearest_rank_of(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[rank - 1];
}

// The invariants every measured row keeps. With rounds, each round's `repeats` requests follow
// the previous round's in latency_seconds; a round's tokens/s is its tokens over its requests'
// time, and the row's the median of the rounds'.
void expect_inference_row_invariants(const json& r, int64_t new_tokens, int64_t repeats,
                                     int64_t rounds = 1) {
  SCOPED_TRACE(r.dump());
  ASSERT_FALSE(r.contains("error"));
  const int64_t batch = r["batch"].get<int64_t>();
  EXPECT_EQ(r["tokens_generated"].get<int64_t>(), batch * new_tokens * repeats * rounds);
  EXPECT_EQ(r["requests"].get<int64_t>(), repeats * rounds);
  EXPECT_EQ(r["rounds"].get<int64_t>(), rounds);
  EXPECT_EQ(r["new_tokens"].get<int64_t>(), new_tokens);
  const auto latency = r["latency_seconds"].get<std::vector<double>>();
  const auto first = r["first_token_seconds"].get<std::vector<double>>();
  ASSERT_EQ(latency.size(), static_cast<size_t>(repeats * rounds));
  ASSERT_EQ(first.size(), static_cast<size_t>(repeats * rounds));
  std::vector<double> round_total(static_cast<size_t>(rounds), 0.0);
  for (size_t i = 0; i < latency.size(); ++i) {
    EXPECT_GT(first[i], 0.0);
    EXPECT_LE(first[i], latency[i]);
    round_total[i / static_cast<size_t>(repeats)] += latency[i];
  }
  std::vector<double> round_tps;
  for (double t : round_total)
    round_tps.push_back(static_cast<double>(batch * new_tokens * repeats) / t);
  const auto reported_rounds = r["round_tokens_per_second"].get<std::vector<double>>();
  ASSERT_EQ(reported_rounds.size(), round_tps.size());
  for (size_t k = 0; k < round_tps.size(); ++k)
    EXPECT_NEAR(reported_rounds[k], round_tps[k], 1e-9 * round_tps[k]) << "round " << k;
  const double p50 = r["latency_p50"].get<double>(), p99 = r["latency_p99"].get<double>();
  EXPECT_GT(p50, 0.0);
  EXPECT_GE(p99, p50);
  EXPECT_DOUBLE_EQ(p50, nearest_rank_of(latency, 50));
  EXPECT_DOUBLE_EQ(p99, nearest_rank_of(latency, 99));
  EXPECT_DOUBLE_EQ(r["first_token_p50"].get<double>(), nearest_rank_of(first, 50));
  EXPECT_NEAR(r["tokens_per_second"].get<double>(), median_of(round_tps),
              1e-9 * r["tokens_per_second"].get<double>());
  EXPECT_GT(r["peak_memory_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(r["peak_memory_kind"], "cpu_peak_rss_requests");
  EXPECT_GE(r["peak_memory_bytes"].get<int64_t>(), r["model_resident_bytes"].get<int64_t>());
  EXPECT_GT(r["gflop_per_request"].get<double>(), 0.0);
  EXPECT_GT(r["gflops_per_second"].get<double>(), 0.0);
  EXPECT_GT(r["percent_of_gemm"].get<double>(), 0.0);
  if (new_tokens > 1) {
    EXPECT_GT(r["decode_gflops_per_second"].get<double>(), 0.0);
    EXPECT_GT(r["decode_percent_of_gemm"].get<double>(), 0.0);
  }
  const std::string search = r["search"].get<std::string>();
  EXPECT_TRUE(search == "greedy" || search.rfind("beam", 0) == 0) << search;
}

TEST(BenchInferenceCli, ReportsEveryConfigurationInJson) {
  TempDir dir;
  // --reduction-factor 4: a bottleneck of 8, which Compacter's n = 4 divides.
  const auto r = run_compacter(
      "bench --inference --model-config '" + testing::write_tiny_t5_config(dir, 128) +
      "' --methods compacter++ --dtypes fp32,autocast-bf16 --batch-sizes 3,1 --source-len 6 "
      "--max-new-tokens 4 --repeats 3 --warmup 1 --reduction-factor 4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = json::parse(r.out);
  EXPECT_EQ(doc["kind"], "inference");
  EXPECT_EQ(doc["failed"], 0);
  const json& rows = doc["configurations"];
  ASSERT_EQ(rows.size(), 2u * 2u);
  std::set<std::tuple<std::string, std::string, int64_t>> seen;
  for (const json& row : rows) {
    expect_inference_row_invariants(row, 4, 3);
    seen.insert({row["method"], row["dtype"], row["batch"].get<int64_t>()});
    const bool fp32 = row["dtype"] == "fp32";
    EXPECT_EQ(row["products_dtype"], fp32 ? "fp32" : "bf16");
    if (fp32) {
      EXPECT_DOUBLE_EQ(row["tokens_per_second_vs_fp32"].get<double>(), 1.0);
    }
    if (row["batch"] == 1) {
      EXPECT_DOUBLE_EQ(row["tokens_per_second_vs_smallest_batch"].get<double>(), 1.0);
    } else {
      EXPECT_GT(row["tokens_per_second_vs_smallest_batch"].get<double>(), 0.0);
    }
    EXPECT_GT(row["added_parameters"].get<int64_t>(), 0) << row.dump();
  }
  for (const char* dtype : {"fp32", "autocast-bf16"})
    for (int64_t batch : {1, 3})
      EXPECT_EQ(seen.count({"compacter++", dtype, batch}), 1u) << dtype << " " << batch;
  // The order asked for: method, then dtype, then batch sizes as given.
  EXPECT_EQ(rows[0]["dtype"], "fp32");
  EXPECT_EQ(rows[0]["batch"], 3);
  EXPECT_EQ(rows[1]["batch"], 1);

  const json& st = doc["settings"];
  EXPECT_EQ(st["batch_sizes"], json({3, 1}));
  EXPECT_EQ(st["max_new_tokens"], 4);
  EXPECT_EQ(st["repeats"], 3);
  EXPECT_EQ(st["stops_at_eos"], false);
  EXPECT_EQ(st["searches"], json({"greedy"}));
  EXPECT_GT(doc["gemm"]["fp32"]["best_gflops"].get<double>(), 0.0);
  EXPECT_GT(doc["gemm"]["bf16"]["best_gflops"].get<double>(), 0.0);
  EXPECT_EQ(doc["gemm"]["fp32"]["representative"]["m"], 3 * 6);  // largest batch x source
  const json& kernels = doc["machine"]["kernels"];
  EXPECT_EQ(kernels["fp32_gflops"], doc["gemm"]["fp32"]["best_gflops"]) << kernels.dump();
  EXPECT_EQ(kernels["line"].get<std::string>().rfind("kernels: ", 0), 0u) << kernels.dump();
  // Progress goes to stderr.
  EXPECT_NE(r.err.find("request 3/3"), std::string::npos) << r.err;
}

// --rounds 3: every configuration runs three times, each row pooling its rounds' requests; a ratio
// to fp32 or to the smallest batch is the median of the rounds' own ratios (not the ratio of the
// medians), worked out here from each row's round_tokens_per_second.
TEST(BenchInferenceCli, RoundsPoolRequestsAndTakeTheMedianOfEachRoundsRatios) {
  TempDir dir;
  const auto r = run_compacter(
      "bench --inference --model-config '" + testing::write_tiny_t5_config(dir, 64) +
      "' --methods none --dtypes fp32,bf16 --batch-sizes 1,2 --source-len 4 --max-new-tokens 2 "
      "--repeats 2 --warmup 0 --rounds 3 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = json::parse(r.out);
  EXPECT_EQ(doc["failed"], 0);
  EXPECT_EQ(doc["settings"]["rounds"], 3);
  const json& rows = doc["configurations"];
  ASSERT_EQ(rows.size(), 4u);
  auto row = [&](const std::string& dtype, int64_t batch) {
    for (const json& x : rows)
      if (x["dtype"] == dtype && x["batch"] == batch) return x;
    ADD_FAILURE() << "no row " << dtype << " " << batch;
    return json();
  };
  auto median_ratio = [&](const json& a, const json& b) {
    const auto x = a["round_tokens_per_second"].get<std::vector<double>>();
    const auto y = b["round_tokens_per_second"].get<std::vector<double>>();
    std::vector<double> each;
    for (size_t k = 0; k < x.size(); ++k) each.push_back(x[k] / y[k]);
    return median_of(each);
  };
  for (const json& x : rows) {
    expect_inference_row_invariants(x, 2, 2, 3);
    const json fp32 = row("fp32", x["batch"].get<int64_t>());
    const json small = row(x["dtype"].get<std::string>(), 1);
    EXPECT_NEAR(x["tokens_per_second_vs_fp32"].get<double>(), median_ratio(x, fp32), 1e-12);
    EXPECT_NEAR(x["tokens_per_second_vs_smallest_batch"].get<double>(), median_ratio(x, small),
                1e-12);
  }
  // Three rounds of four workers each, the second in the reverse order.
  for (const char* line : {"round 1/3, configuration 1/4: none fp32 greedy batch 1",
                           "round 1/3, configuration 2/4: none bf16 greedy batch 1",
                           "round 2/3, configuration 1/4: none bf16 greedy batch 2",
                           "round 3/3, configuration 4/4: none bf16 greedy batch 2"})
    EXPECT_NE(r.err.find(line), std::string::npos) << line << "\n" << r.err;
  // The table says so too.
  const auto t = run_compacter(
      "bench --inference --model-config '" + testing::write_tiny_t5_config(dir, 64) +
      "' --methods none --dtypes fp32 --batch-sizes 1 --source-len 4 --max-new-tokens 1 "
      "--repeats 1 --warmup 0 --rounds 2");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("1 timed requests (+0 warm-up) in each of 2 rounds"), std::string::npos)
      << t.out;
}

// int8 (nn/int8_linear.h) decodes through the quantised layers where this libtorch has them, and
// is an inference dtype only: training commands refuse it as bad usage. --int8-keep-fp32 chooses
// the layers left fp32, as for eval.
TEST(BenchInferenceCli, Int8IsAnInferenceDtype) {
  TempDir dir;
  const auto r = run_compacter(
      "bench --inference --model-config '" + testing::write_tiny_t5_config(dir, 128) +
      "' --methods lora --dtypes fp32,int8 --batch-sizes 2 --source-len 5 --max-new-tokens 3 "
      "--repeats 2 --warmup 0 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = json::parse(r.out);
  const json& rows = doc["configurations"];
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1]["dtype"], "int8");
  EXPECT_EQ(rows[1]["products_dtype"], "fp32");  // what int8 is measured against
  // The model's parameters are counted as fp32's, although int8 freed its layers' fp32 weights.
  EXPECT_EQ(rows[1]["backbone_parameters"], rows[0]["backbone_parameters"]);
  EXPECT_EQ(rows[1]["added_parameters"], rows[0]["added_parameters"]);
  expect_inference_row_invariants(rows[1], 3, 2);
  // The kernels line names the int8 engine and the layers kept fp32 (--int8-keep-fp32, default wo).
  const std::string line = doc["machine"]["kernels"]["line"];
  EXPECT_NE(line.find("; int8 linear layers: "), std::string::npos) << line;
  EXPECT_NE(line.find(", fp32 kept: wo;"), std::string::npos) << line;
  const auto kept = run_compacter(
      "bench --inference --model-config '" + testing::write_tiny_t5_config(dir, 128) +
      "' --methods none --dtypes int8 --int8-keep-fp32 wo,lm_head --batch-sizes 1 --source-len 3 "
      "--max-new-tokens 1 --repeats 1 --warmup 0 --json");
  ASSERT_EQ(kept.exit_code, 0) << kept.err;
  EXPECT_NE(json::parse(kept.out)["machine"]["kernels"]["line"].get<std::string>().find(
                ", fp32 kept: wo,lm_head;"),
            std::string::npos);
  // A layer it does not know, or the option without int8: bad usage.
  for (const std::string bad : {"--dtypes int8 --int8-keep-fp32 head", "--int8-keep-fp32 none"}) {
    const auto refused = run_compacter("bench --inference --model-config '" +
                                       testing::write_tiny_t5_config(dir, 128) + "' " + bad);
    EXPECT_EQ(refused.exit_code, 2) << bad << ": " << refused.err;
    EXPECT_NE(refused.err.find("--int8-keep-fp32"), std::string::npos) << refused.err;
  }

  const auto train = run_compacter("train --model " + dir.path() +
                                   " --task rte --data-dir x --method lora --dtype int8");
  EXPECT_EQ(train.exit_code, 2) << train.err;
  EXPECT_NE(train.err.find("int8"), std::string::npos) << train.err;
}

TEST(BenchInferenceCli, PrintsATableOfOneLinePerConfigurationAndItsProfile) {
  TempDir dir;
  const auto r =
      run_compacter("bench --inference --model-config '" + testing::write_tiny_t5_config(dir, 128) +
                    "' --methods none --dtypes fp32 --batch-sizes 2 --source-len 4 "
                    "--max-new-tokens 1 --repeats 1 --warmup 0 --profile '" +
                    dir.file("prof") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("tok/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("kernels: "), std::string::npos) << r.out;
  std::istringstream lines(r.out);
  int rows = 0;
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("none ", 0) == 0) ++rows;
  EXPECT_EQ(rows, 1) << r.out;
  // The Chrome trace of the timed request: JSON naming the decoder's operators.
  const std::string trace = testing::read_file(dir.file("prof/profile-none-fp32-greedy-b2.json"));
  json parsed;
  EXPECT_NO_THROW(parsed = json::parse(trace));
  EXPECT_NE(trace.find("aten::"), std::string::npos);
  // Our own kernels, which no aten operator stands for, are named too: the attention's products.
  EXPECT_NE(trace.find("compacter::batched_matmul"), std::string::npos);
}

TEST(BenchInferenceCli, LoadsARealModelFolder) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  const auto r = run_compacter("bench --inference --model " + testing::shared_path("data/tiny-t5") +
                               " --methods none,lora --dtypes bf16 --batch-sizes 2 --source-len 5 "
                               "--max-new-tokens 3 --repeats 2 --warmup 0 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = json::parse(r.out);
  ASSERT_EQ(doc["configurations"].size(), 2u);
  for (const json& row : doc["configurations"]) {
    expect_inference_row_invariants(row, 3, 2);
    EXPECT_EQ(row["vocab_size"], 512);  // the folder's config.json
  }
  const json& none = doc["configurations"][0];
  const json& lora = doc["configurations"][1];
  EXPECT_EQ(none["method"], "none");
  EXPECT_EQ(none["added_parameters"], 0) << none.dump();
  EXPECT_EQ(lora["method"], "lora");
  EXPECT_GT(lora["added_parameters"].get<int64_t>(), 0) << lora.dump();
  EXPECT_EQ(doc["settings"]["weights"], "from the model folder");
}

// The model's resident bytes are measured after the allocator returned the pages it freed
// (train::release_free_memory): t5-small built in fp32 and cast to bf16 holds 2 bytes less per
// parameter than in fp32. Without the release, TCMalloc kept the fp32 pages and both read the same.
TEST(BenchInferenceCli, ABf16ModelIsResidentInHalfItsFp32Bytes) {
  const auto r = run_compacter(
      "bench --inference --model-config t5-small --methods none --dtypes fp32,bf16 "
      "--batch-sizes 1 --source-len 4 --max-new-tokens 1 --repeats 1 --warmup 0 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json rows = json::parse(r.out)["configurations"];
  ASSERT_EQ(rows.size(), 2u);
  ASSERT_EQ(rows[0]["dtype"], "fp32");
  ASSERT_EQ(rows[1]["dtype"], "bf16");
  const double parameters = rows[0]["backbone_parameters"].get<double>();
  ASSERT_GT(parameters, 50e6);  // t5-small: 60.5M with the tied embedding
  const double fp32 = rows[0]["model_resident_bytes"].get<double>();
  const double bf16 = rows[1]["model_resident_bytes"].get<double>();
  // At least 3/4 of the 2 bytes per parameter that bf16 saves (the rest of the process, libtorch
  // and the program, is the same in both).
  EXPECT_LT(bf16, fp32 - 0.75 * 2.0 * parameters) << "fp32 " << fp32 << ", bf16 " << bf16;
}

TEST(BenchInferenceCli, MeasuresBeamSearchNextToGreedy) {
  TempDir dir;
  const auto r =
      run_compacter("bench --inference --model-config '" + testing::write_tiny_t5_config(dir, 128) +
                    "' --methods none --dtypes fp32 --searches greedy,beam3 "
                    "--batch-sizes 2 --source-len 5 --max-new-tokens 3 --repeats 2 "
                    "--warmup 0 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = json::parse(r.out);
  ASSERT_EQ(doc["configurations"].size(), 2u);
  EXPECT_EQ(doc["configurations"][0]["search"], "greedy");
  EXPECT_EQ(doc["configurations"][1]["search"], "beam3");
  for (const json& row : doc["configurations"]) expect_inference_row_invariants(row, 3, 2);
  // Beam search decodes three rows per input after one encoder pass per input.
  EXPECT_GT(doc["configurations"][1]["gflop_per_request"].get<double>(),
            doc["configurations"][0]["gflop_per_request"].get<double>());
}

TEST(BenchInferenceCli, BadOptionsAreRefusedBeforeAnyRun) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--inference --batch-sizes 0", "--batch-sizes: \"0\" is not a positive whole number"},
      {"--inference --batch-sizes 1,x", "--batch-sizes: \"x\""},
      {"--inference --batch-sizes 1,1", "--batch-sizes: 1 is listed twice"},
      {"--inference --batch-sizes ''", "--batch-sizes"},
      {"--inference --max-new-tokens 0", "--max-new-tokens must be at least 1"},
      {"--inference --repeats 0", "--repeats must be at least 1"},
      {"--inference --rounds 0", "--rounds must be at least 1"},
      {"--inference --rounds 2 --profile /tmp/p", "--profile takes one round"},
      {"--rounds 2", "--rounds needs --inference"},
      {"--inference --source-len 0", "--source-len must be at least 1"},
      {"--inference --dtypes fp32,fp16", "--dtypes"},
      {"--inference --searches beam1", "unknown decoding \"beam1\""},
      {"--inference --searches beam4x", "unknown decoding \"beam4x\""},
      {"--inference --searches sampling", "unknown decoding \"sampling\""},
      {"--inference --methods nosuch", "unknown method \"nosuch\""},
      {"--inference --methods none,none", "none is listed twice"},
      {"--inference --batch-size 4", "--batch-size is the training bench's"},
      {"--batch-sizes 1", "--batch-sizes needs --inference"},
      {"--max-new-tokens 4", "--max-new-tokens needs --inference"},
  };
  for (const auto& [args, message] : cases) {
    SCOPED_TRACE(args);
    const auto r = run_compacter("bench " + args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("[bench]"), std::string::npos) << r.err;  // nothing ran
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

}  // namespace
}  // namespace compacter

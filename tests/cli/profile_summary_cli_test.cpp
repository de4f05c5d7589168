// bench/profile_summary.py, run with python3 on Chrome traces: a hand-made one whose per-step
// medians and means are worked out by hand below, the same without step marks (an older
// program's trace), bad input, and the trace `compacter bench --profile` writes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "support/test_support.h"

namespace compacter {
namespace {

using ::compacter::testing::run_command;
using ::compacter::testing::TempDir;
using nlohmann::json;

std::string summary_command(const std::string& args) {
  return "python3 '" + std::string(COMPACTER_SOURCE_DIR) + "/bench/profile_summary.py' " + args;
}

bool have_python() {
  static const bool found =
      run_command("python3 -c 'import argparse, bisect, json, statistics'").exit_code == 0;
  return found;
}

#define REQUIRE_PYTHON() \
  if (!have_python()) GTEST_SKIP() << "python3 not found"

json event(const std::string& name, double ts, double dur) {
  return {{"name", name},           {"ph", "X"}, {"ts", ts}, {"dur", dur},
          {"pid", "CPU Functions"}, {"tid", 1}};
}

// Three steps of 8,000 us each, 10,000 us apart. In each: an aten::add (100, 5,000 and 120 us:
// the second step stalls in it), and a compacter::batched_matmul of 1,000 us that calls an
// aten::empty of 50 us. Before the first step, an aten::mul of 300 us that no step holds.
json hand_made_trace(bool with_marks) {
  json events = json::array();
  events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", "CPU Functions"}});
  events.push_back(event("aten::mul", -5000, 300));
  const double add_us[] = {100, 5000, 120};
  for (int k = 0; k < 3; ++k) {
    const double start = 10000.0 * k;
    if (with_marks) events.push_back(event("compacter::bench_step", start, 8000));
    events.push_back(event("aten::add", start + 100, add_us[k]));
    events.push_back(event("compacter::batched_matmul", start + 6000, 1000));
    events.push_back(event("aten::empty", start + 6100, 50));
  }
  return events;
}

const json* find_operator(const json& summary, const std::string& name) {
  for (const json& op : summary["operators"])
    if (op["name"] == name) return &op;
  return nullptr;
}

TEST(ProfileSummaryCli, MedianOverTheMarkedStepsLeavesOneStallOut) {
  REQUIRE_PYTHON();
  TempDir dir;
  testing::write_file(dir.file("trace.json"), hand_made_trace(true).dump());
  const auto r = run_command(summary_command("'" + dir.file("trace.json") + "'"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json s = json::parse(r.out);
  EXPECT_EQ(s["steps"], 3);
  EXPECT_EQ(s["statistic"], "median");
  EXPECT_NEAR(s["total_ms_per_step"].get<double>(), 8.0, 1e-12);  // each step's 8,000 us
  const json& g = s["groups"];
  // aten::add: median of 100, 5,000, 120 us; mean 5,220 / 3. The aten::mul outside the steps
  // is not counted.
  EXPECT_NEAR(g["element-wise"]["ms_per_step"].get<double>(), 0.120, 1e-12);
  EXPECT_NEAR(g["element-wise"]["mean_ms_per_step"].get<double>(), 1.740, 1e-12);
  EXPECT_NEAR(g["element-wise"]["share"].get<double>(), 0.120 / 8.0, 1e-12);
  // The product's self time: 1,000 - 50 us; the aten::empty inside it: 50 us.
  EXPECT_NEAR(g["matrix products"]["ms_per_step"].get<double>(), 0.950, 1e-12);
  EXPECT_NEAR(g["copies and layout"]["ms_per_step"].get<double>(), 0.050, 1e-12);
  // Each step's time in no operator: 8,000 - add - 1,000 = 6,900, 2,000, 6,880 us.
  EXPECT_NEAR(g["outside operators"]["ms_per_step"].get<double>(), 6.880, 1e-12);
  EXPECT_FALSE(g.contains("other")) << g.dump();
  const json* add = find_operator(s, "aten::add");
  ASSERT_NE(add, nullptr) << s.dump();
  EXPECT_NEAR((*add)["calls_per_step"].get<double>(), 1.0, 1e-12);
  EXPECT_EQ(find_operator(s, "aten::mul"), nullptr) << s.dump();
  EXPECT_EQ(find_operator(s, "compacter::bench_step"), nullptr) << s.dump();

  const auto table = run_command(summary_command("'" + dir.file("trace.json") + "' --table"));
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("median of 3 steps"), std::string::npos) << table.out;
}

// The library's own products, which call no aten product (int8's kernel, oneDNN's GEMMs), are
// matrix products, not time outside operators: one step of 10,000 us holding 1,000, 2,000 and
// 3,000 us of them.
TEST(ProfileSummaryCli, TheLibrarysOwnProductsAreMatrixProducts) {
  REQUIRE_PYTHON();
  TempDir dir;
  json events = json::array();
  events.push_back(event("compacter::bench_request", 0, 10000));
  events.push_back(event("compacter::int8_linear", 100, 1000));
  events.push_back(event("compacter::onednn_linear", 2000, 2000));
  events.push_back(event("compacter::bf16_linear", 5000, 3000));
  testing::write_file(dir.file("trace.json"), events.dump());
  const auto r = run_command(summary_command("'" + dir.file("trace.json") + "'"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json s = json::parse(r.out);
  EXPECT_NEAR(s["groups"]["matrix products"]["ms_per_step"].get<double>(), 6.0, 1e-12);
  EXPECT_NEAR(s["groups"]["outside operators"]["ms_per_step"].get<double>(), 4.0, 1e-12);
}

TEST(ProfileSummaryCli, ATraceWithoutMarksIsSummedOverTheStepsGiven) {
  REQUIRE_PYTHON();
  TempDir dir;
  testing::write_file(dir.file("old.json"), hand_made_trace(false).dump());
  const auto r = run_command(summary_command("'" + dir.file("old.json") + "' --steps 3"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json s = json::parse(r.out);
  EXPECT_EQ(s["statistic"], "mean");
  // Every event counts: aten::add's 5,220 us and aten::mul's 300, over 3 steps.
  EXPECT_NEAR(s["groups"]["element-wise"]["ms_per_step"].get<double>(), 5.520 / 3, 1e-12);
  EXPECT_NEAR(s["total_ms_per_step"].get<double>(), (5.220 + 0.300 + 3 * 1.000) / 3, 1e-12);

  // Without --steps it cannot know the steps: exit 2, saying what to give.
  const auto no_steps = run_command(summary_command("'" + dir.file("old.json") + "'"));
  EXPECT_EQ(no_steps.exit_code, 2);
  EXPECT_NE(no_steps.err.find("--steps"), std::string::npos) << no_steps.err;
  EXPECT_TRUE(no_steps.out.empty()) << no_steps.out;
}

TEST(ProfileSummaryCli, BadInputIsOneErrorNamingIt) {
  REQUIRE_PYTHON();
  TempDir dir;
  testing::write_file(dir.file("trace.json"), hand_made_trace(true).dump());
  const auto wrong_steps =
      run_command(summary_command("'" + dir.file("trace.json") + "' --steps 2"));
  EXPECT_EQ(wrong_steps.exit_code, 2);
  EXPECT_NE(wrong_steps.err.find("marks 3 steps"), std::string::npos) << wrong_steps.err;
  EXPECT_TRUE(wrong_steps.out.empty());

  const auto missing = run_command(summary_command("'" + dir.file("absent.json") + "'"));
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("absent.json: cannot read"), std::string::npos) << missing.err;

  testing::write_file(dir.file("cut.json"), hand_made_trace(true).dump().substr(0, 100));
  const auto cut = run_command(summary_command("'" + dir.file("cut.json") + "'"));
  EXPECT_NE(cut.exit_code, 0);
  EXPECT_NE(cut.err.find("cut.json: not JSON"), std::string::npos) << cut.err;
  EXPECT_EQ(cut.err.find("Traceback"), std::string::npos) << cut.err;

  json no_dur = hand_made_trace(true);
  no_dur[2].erase("dur");
  testing::write_file(dir.file("no_dur.json"), no_dur.dump());
  const auto bad_event = run_command(summary_command("'" + dir.file("no_dur.json") + "'"));
  EXPECT_NE(bad_event.exit_code, 0);
  EXPECT_NE(bad_event.err.find("no_dur.json: a complete"), std::string::npos) << bad_event.err;
}

// A reader that stops before the end (`| head -1`; here `| true`, which reads nothing and is gone
// before python3 has started) ends the summary quietly, as it ends `cat`: no BrokenPipeError.
TEST(ProfileSummaryCli, AReaderThatStopsEarlyGetsNoTraceback) {
  REQUIRE_PYTHON();
  TempDir dir;
  testing::write_file(dir.file("trace.json"), hand_made_trace(true).dump());
  for (const char* table : {" --table", ""}) {
    // The group's stderr (the file run_command reads) is python3's.
    const auto r = run_command("{ " + summary_command("'" + dir.file("trace.json") + "'" + table) +
                               " | true; }");
    EXPECT_EQ(r.err.find("Traceback"), std::string::npos) << table << ": " << r.err;
    EXPECT_EQ(r.err.find("BrokenPipe"), std::string::npos) << table << ": " << r.err;
  }
}

// The trace `bench --profile` writes marks every timed step, and every operator lies in one.
TEST(ProfileSummaryCli, BenchMarksEachTimedStepAroundAllItsOperators) {
  TempDir dir;
  const auto r = testing::run_compacter(
      "bench --model-config '" + testing::write_tiny_t5_config(dir, 128) +
      "' --methods lora --batch-size 2 --source-len 8 --target-len 3 --max-steps 3 --warmup 1 "
      "--profile '" +
      dir.file("prof") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json trace = json::parse(testing::read_file(dir.file("prof/profile-lora.json")));
  const json& events = trace.is_object() ? trace["traceEvents"] : trace;
  std::vector<std::pair<double, double>> steps;
  for (const json& e : events)
    if (e.value("name", "") == "compacter::bench_step")
      steps.emplace_back(e["ts"].get<double>(), e["dur"].get<double>());
  ASSERT_EQ(steps.size(), 3u);
  int operators = 0, backward = 0;
  for (const json& e : events) {
    const std::string name = e.value("name", "");
    if (e.value("ph", "") != "X" || name == "compacter::bench_step") continue;
    ++operators;
    if (name.find("Backward") != std::string::npos || name.find("CppNode") != std::string::npos)
      ++backward;
    const double ts = e["ts"].get<double>(), end = ts + e["dur"].get<double>();
    bool inside = false;
    for (const auto& [start, dur] : steps) inside = inside || (ts >= start && end <= start + dur);
    EXPECT_TRUE(inside) << e.dump();
  }
  EXPECT_GT(operators, 100);
  EXPECT_GT(backward, 0);  // the backward pass is inside the marks too

  if (!have_python()) GTEST_SKIP() << "python3 not found (the trace itself was checked)";
  const auto s = run_command(summary_command("'" + dir.file("prof/profile-lora.json") + "'"));
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_EQ(json::parse(s.out)["steps"], 3);
}

}  // namespace
}  // namespace compacter

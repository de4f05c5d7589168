// The SVG figures (plot/figures.h) on hand-made inputs: the pixel of every point and bar follows
// from the documented geometry (plot/svg.h: plot area x in [80, 540], y in [60, 380]) and the axis
// ranges worked out by hand below from the documented rules (plot/axis.h: linear axes padded by 5%
// and widened to multiples of a 1-2-5 step not below range / 8; log axes over whole decades).
// Also: means over a method's runs, skipped figures, XML escaping, byte-identical output, and
// clear errors for missing or corrupt inputs with nothing written.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <functional>
#include <regex>

#include "compacter/core/error.h"
#include "compacter/plot/axis.h"
#include "compacter/plot/figures.h"
#include "compacter/train/report.h"
#include "support/test_support.h"

namespace compacter {
namespace {

using nlohmann::json;

struct Point {
  std::string series;
  double x, y;
};

// The circles of an SVG (class "point"), in document order.
std::vector<Point> points(const std::string& svg) {
  std::vector<Point> out;
  const std::regex re(
      "<circle class=\"point\" data-series=\"([^\"]*)\" cx=\"([-0-9.]+)\" cy=\"([-0-9.]+)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator();
       ++it)
    out.push_back({(*it)[1], std::stod((*it)[2]), std::stod((*it)[3])});
  return out;
}

// The x y width height of the bars (class "bar") of one series.
std::vector<std::array<double, 4>> bars(const std::string& svg, const std::string& series) {
  std::vector<std::array<double, 4>> out;
  const std::regex re(
      "<rect class=\"bar\" data-series=\"([^\"]*)\" x=\"([-0-9.]+)\" y=\"([-0-9.]+)\" "
      "width=\"([-0-9.]+)\" height=\"([-0-9.]+)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator();
       ++it)
    if ((*it)[1] == series)
      out.push_back(
          {std::stod((*it)[2]), std::stod((*it)[3]), std::stod((*it)[4]), std::stod((*it)[5])});
  return out;
}

// The fraction along a log axis whose data spans lo..hi (log10 widened by 5% on each side).
double log_fraction(double v, double lo, double hi) {
  const double l0 = std::log10(lo), l1 = std::log10(hi), pad = (l1 - l0) * 0.05;
  return (std::log10(v) - (l0 - pad)) / (l1 - l0 + 2 * pad);
}

// The plot area's pixel of a fraction along each axis.
double px_x(double fraction) {
  return 80 + fraction * 460;
}
double px_y(double fraction) {
  return 380 - fraction * 320;
}

void write_run(const std::string& dir, const std::string& method, double percent, double test,
               const std::string& metrics_jsonl) {
  std::filesystem::create_directories(dir);
  const json results = {{"method", method},
                        {"task", "rte"},
                        {"metrics", {{"test", {{"accuracy", test}}}}},
                        {"parameters", {{"trainable", 100}, {"percent_of_backbone", percent}}},
                        {"adapter_bytes", 400},
                        {"config", {{"model", "t5"}, {"data", {{"max_train_samples", -1}}}}},
                        {"time", {{"train_seconds", 1.0}}}};
  testing::write_file(dir + "/results.json", results.dump());
  testing::write_file(dir + "/metrics.jsonl", metrics_jsonl);
}

// Four runs: bitfit twice (0.05%, 50 and 54: mean 52), adapter (0.5%, 60), full (20%, 75).
std::vector<std::string> four_runs(const testing::TempDir& dir) {
  const std::string train =
      "{\"type\":\"train\",\"step\":10,\"loss\":2.0}\n{\"type\":\"train\",\"step\":20,\"loss\":1.0}"
      "\n"
      "{\"type\":\"eval\",\"step\":20,\"metrics\":{\"accuracy\":55.0}}\n";
  write_run(dir.file("a"), "bitfit", 0.05, 50, train);
  write_run(dir.file("b"), "bitfit", 0.05, 54, train);
  write_run(dir.file("c"), "adapter", 0.5, 60, train);
  write_run(dir.file("d"), "full", 20, 75, train);
  return {dir.file("a"), dir.file("b"), dir.file("c"), dir.file("d")};
}

TEST(PlotAxis, NiceStepsAndRanges) {
  EXPECT_DOUBLE_EQ(plot::nice_step(25.3), 5);  // 3.16 -> 5
  EXPECT_DOUBLE_EQ(plot::nice_step(105), 20);  // 13.1 -> 20
  EXPECT_NEAR(plot::nice_step(0.08), 0.01, 1e-12);
  const plot::Axis a = plot::linear_axis({52, 60, 75}, "s");
  EXPECT_DOUBLE_EQ(a.lo, 50);  // 52 - 1.15 = 50.85, floored to a multiple of 5
  EXPECT_DOUBLE_EQ(a.hi, 80);  // 75 + 1.15 = 76.15, ceiled
  EXPECT_EQ(a.ticks.size(), 7u);
  EXPECT_EQ(a.tick_label(a.ticks[1]), "55");
  // log10: -1.301..1.301 widened by 5% of 2.602 decades; ticks at the powers of ten inside.
  const plot::Axis l = plot::log_axis({0.05, 0.5, 20}, "p");
  EXPECT_NEAR(std::log10(l.lo), -1.30103 * 1.1, 1e-5);
  EXPECT_NEAR(std::log10(l.hi), 1.30103 * 1.1, 1e-5);
  ASSERT_EQ(l.ticks.size(), 3u);
  EXPECT_DOUBLE_EQ(l.ticks[0], 0.1);
  EXPECT_EQ(l.tick_label(0.01), "0.01");
  // Less than a decade: 1, 2 and 5 times the powers of ten.
  const plot::Axis narrow = plot::log_axis({1.5, 6}, "p");
  EXPECT_EQ(narrow.ticks, (std::vector<double>{2, 5}));
  const plot::Axis narrower = plot::log_axis({1.5, 12}, "p");
  EXPECT_EQ(narrower.ticks, (std::vector<double>{2, 5, 10}));
  EXPECT_EQ(plot::px(-0.001), "0.00");
}

TEST(PlotFigures, Figure1PointsSitWhereTheDataSays) {
  testing::TempDir dir;
  const auto figures = plot::report_figures(four_runs(dir), "");
  ASSERT_EQ(figures.size(), 4u);
  const plot::Figure& f1 = figures[0];
  ASSERT_EQ(f1.file, "figure1.svg");
  ASSERT_FALSE(f1.svg.empty()) << f1.skipped;
  const auto p = points(f1.svg);
  ASSERT_EQ(p.size(), 3u) << f1.svg;  // one per method, in order of first appearance
  // x: log10 over 0.05..20, widened; y: 50..80 (means 52, 60, 75).
  const double xs[] = {0.05, 0.5, 20}, ys[] = {52, 60, 75};
  const char* names[] = {"bitfit", "adapter", "full"};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(p[i].series, names[i]);
    EXPECT_NEAR(p[i].x, px_x(log_fraction(xs[i], 0.05, 20)), 0.01) << names[i];
    EXPECT_NEAR(p[i].y, px_y((ys[i] - 50) / 30), 0.01) << names[i];
  }
  EXPECT_NE(f1.svg.find("accuracy on the test set (x100)"), std::string::npos);
  EXPECT_NE(f1.svg.find("trained parameters (% of"), std::string::npos);
  // No low-resource run: Figure 4 is skipped, saying why.
  EXPECT_TRUE(figures[1].svg.empty());
  EXPECT_NE(figures[1].skipped.find("--max-train-samples"), std::string::npos);
  // Loss: steps 10..20 padded to 20.5, from zero (step 5): 0..25; loss 1..2 padded to 2.05, from
  // zero (step 0.5): 0..2.5.
  const auto loss = points(figures[2].svg);
  ASSERT_EQ(loss.size(), 8u);
  EXPECT_NEAR(loss[0].x, px_x(10.0 / 25), 0.01);
  EXPECT_NEAR(loss[0].y, px_y(2.0 / 2.5), 0.01);
  EXPECT_NEAR(loss[1].y, px_y(1.0 / 2.5), 0.01);
  // Validation: one evaluation per run, all 55 (a single value: 55 +- 5.5, step 2: 48..62).
  const auto val = points(figures[3].svg);
  ASSERT_EQ(val.size(), 4u);
  EXPECT_NEAR(val[0].y, px_y(7.0 / 14), 0.01);
  // The same input gives the same bytes.
  EXPECT_EQ(plot::report_figures(four_runs(dir), "")[0].svg, f1.svg);
}

TEST(PlotFigures, Figure4LinesPerMethodSortedBySize) {
  auto row = [](const std::string& method, double samples, double test) {
    return json{{"run", method + std::to_string(int(samples))},
                {"method", method},
                {"task", "rte"},
                {"metric", "accuracy"},
                {"percent_of_backbone", 1.0},
                {"max_train_samples", samples},
                {"test", test},
                {"validation", nullptr}};
  };
  // Given out of order: the line joins x = 100 then 1000.
  const json rows = {row("x", 1000, 60), row("x", 100, 40), row("y", 100, 50)};
  const plot::Figure f = plot::figure4(rows);
  ASSERT_FALSE(f.svg.empty()) << f.skipped;
  // x: log over 100..1000 widened by 0.05 decade: 80 + 0.05 / 1.1 * 460 and its mirror; y:
  // 40..60 padded by 1 -> 39..61, step 5 -> 35..65.
  const double left = 80 + 0.05 / 1.1 * 460, right = 540 - 0.05 / 1.1 * 460;
  const std::string line = "points=\"" + plot::px(left) + "," + plot::px(px_y(5.0 / 30)) + " " +
                           plot::px(right) + "," + plot::px(px_y(25.0 / 30)) + "\"";
  EXPECT_NE(f.svg.find(line), std::string::npos) << f.svg;
  const auto p = points(f.svg);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[2].series, "y");
  EXPECT_NEAR(p[2].x, left, 0.01);
  EXPECT_NEAR(p[2].y, px_y(15.0 / 30), 0.01);
}

TEST(PlotFigures, Table3BarsRelativeToFull) {
  const json bench = {
      {"settings",
       {{"model_config", "t5-base"}, {"batch", 8}, {"dtype", "fp32"}, {"device", "cpu"}}},
      {"methods",
       {{{"method", "full"}, {"seconds_per_step", 2.0}, {"peak_memory_bytes", 1000}},
        {{"method", "a<&>"}, {"seconds_per_step", 1.0}, {"peak_memory_bytes", 500}},
        {{"method", "broken"}, {"error", "crashed"}}}},
      {"failed", {"broken"}}};
  const plot::Figure f = plot::bench_figure(bench);
  ASSERT_FALSE(f.svg.empty()) << f.skipped;
  // y: 50..100 padded to 102.5, from zero (step 20): 0..120; two categories of width 230, two bars
  // of 230 * 0.8 / 2 = 92 from 23 px into each.
  const auto time = bars(f.svg, "time per step"), memory = bars(f.svg, "peak memory");
  ASSERT_EQ(time.size(), 2u);
  ASSERT_EQ(memory.size(), 2u);
  EXPECT_NEAR(time[0][0], 103, 0.01);
  EXPECT_NEAR(time[0][1], px_y(100.0 / 120), 0.01);
  EXPECT_NEAR(time[0][2], 92, 0.01);
  EXPECT_NEAR(time[0][3], 380 - px_y(100.0 / 120), 0.01);
  EXPECT_NEAR(memory[1][0], 80 + 230 + 23 + 92, 0.01);
  EXPECT_NEAR(memory[1][1], px_y(50.0 / 120), 0.01);
  EXPECT_NEAR(memory[1][3], 380 - px_y(50.0 / 120), 0.01);
  EXPECT_NE(f.svg.find("a&lt;&amp;&gt;"), std::string::npos);  // escaped
  EXPECT_EQ(f.svg.find("a<&>"), std::string::npos);

  json no_full = bench;
  no_full["methods"].erase(0);
  const plot::Figure skipped = plot::bench_figure(no_full);
  EXPECT_TRUE(skipped.svg.empty());
  EXPECT_NE(skipped.skipped.find("full"), std::string::npos);
  EXPECT_THROW(plot::bench_figure(json{{"x", 1}}), Error);
}

TEST(PlotFigures, InferenceTokensPerSecondAgainstBatch) {
  const json bench = {{"kind", "inference"},
                      {"settings",
                       {{"model_config", "t5-small"},
                        {"source_len", 64},
                        {"max_new_tokens", 16},
                        {"device", "cpu"}}},
                      {"configurations",
                       {{{"method", "none"},
                         {"dtype", "fp32"},
                         {"search", "greedy"},
                         {"batch", 4},
                         {"tokens_per_second", 30.0}},
                        {{"method", "none"},
                         {"dtype", "fp32"},
                         {"search", "greedy"},
                         {"batch", 1},
                         {"tokens_per_second", 10.0}}}},
                      {"failed", 0}};
  const plot::Figure f = plot::bench_figure(bench);
  ASSERT_FALSE(f.svg.empty()) << f.skipped;
  // x: log over the batch sizes 1..4, widened; y: 10..30 padded to 31, from zero (step 5): 0..35.
  const auto p = points(f.svg);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_NEAR(p[0].x, px_x(log_fraction(1, 1, 4)), 0.01);
  EXPECT_NEAR(p[0].x, 80 + 0.05 / 1.1 * 460, 0.01);
  EXPECT_NEAR(p[0].y, px_y(10.0 / 35), 0.01);
  EXPECT_NEAR(p[1].x, 540 - 0.05 / 1.1 * 460, 0.01);
  EXPECT_NEAR(p[1].y, px_y(30.0 / 35), 0.01);
  EXPECT_NE(f.svg.find("generated tokens per second"), std::string::npos);
}

using testing::error_of;

TEST(PlotFigures, BadInputsNameTheFileAndWriteNothing) {
  testing::TempDir dir;
  auto runs = four_runs(dir);
  const std::string out = dir.file("plots");
  std::filesystem::remove(dir.file("c") + "/results.json");
  EXPECT_NE(error_of([&] { plot::report_figures(runs, ""); }).find(dir.file("c") + "/results.json"),
            std::string::npos);
  runs = four_runs(dir);
  testing::write_file(dir.file("d") + "/metrics.jsonl", "{\"type\":\"train\"}\nnot json\n");
  EXPECT_NE(
      error_of([&] { plot::report_figures(runs, ""); }).find(dir.file("d") + "/metrics.jsonl:2"),
      std::string::npos);
  // A record whose "type" is not a string (nlohmann's type_error used to escape, unnamed).
  testing::write_file(dir.file("d") + "/metrics.jsonl", "{\"type\":\"train\"}\n{\"type\":3}\n");
  const std::string mistyped = error_of([&] { plot::report_figures(runs, ""); });
  EXPECT_NE(mistyped.find(dir.file("d") + "/metrics.jsonl:2: \"type\" must be a string"),
            std::string::npos)
      << mistyped;
  testing::write_file(dir.file("d") + "/results.json", "{\"method\":");
  EXPECT_NE(error_of([&] { plot::report_figures(runs, ""); }).find(dir.file("d") + "/results.json"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(out));

  // A file where the folder should be: an error naming it.
  runs = four_runs(dir);
  const auto figures = plot::report_figures(runs, "");
  testing::write_file(out, "x");
  EXPECT_NE(error_of([&] { plot::write_figures(figures, out); }).find(out), std::string::npos);
  std::filesystem::remove(out);
  plot::write_figures(figures, out);
  EXPECT_TRUE(std::filesystem::exists(out + "/figure1.svg"));
  EXPECT_FALSE(std::filesystem::exists(out + "/figure4.svg"));  // skipped: no data
  EXPECT_EQ(testing::read_file(out + "/figure1.svg"), figures[0].svg);
}

// Fields of the wrong type or missing, found by the fuzz targets results_json and bench_plot:
// each is an Error naming the file or document, the entry and the field (before: nlohmann's
// type_error escaped from format_report unnamed, a float "trainable" was cast to an integer
// (undefined beyond its range), and a configuration without "dtype" read past the end of the
// JSON object, a heap overflow under AddressSanitizer).
TEST(PlotFigures, MistypedFieldsAreErrorsNamingTheField) {
  testing::TempDir dir;
  const std::string run = dir.file("run");
  write_run(run, "lora", 0.1, 60.0, "");
  const std::string results = run + "/results.json";
  const json good = json::parse(testing::read_file(results));
  const auto report_error = [&](const std::function<void(json&)>& change) {
    json r = good;
    change(r);
    testing::write_file(results, r.dump());
    return error_of([&] { train::format_report(train::report_rows({run}, "")); });
  };
  std::string e = report_error([](json& r) { r["method"] = 7; });
  EXPECT_NE(e.find(results + ": \"method\" must be a string"), std::string::npos) << e;
  e = report_error([](json& r) { r["parameters"]["trainable"] = "many"; });
  EXPECT_NE(e.find(results + ": \"parameters\": \"trainable\" must be an integer"),
            std::string::npos)
      << e;
  e = report_error([](json& r) { r["parameters"]["trainable"] = 1e300; });
  EXPECT_NE(e.find("\"trainable\" must be an integer"), std::string::npos) << e;
  e = report_error([](json& r) { r["metrics"]["test"]["accuracy"] = "high"; });
  EXPECT_NE(e.find(results + ": \"metrics\": test: \"accuracy\" must be a number"),
            std::string::npos)
      << e;
  e = report_error([](json& r) { r.erase("adapter_bytes"); });
  EXPECT_NE(e.find(results + ": missing field \"adapter_bytes\""), std::string::npos) << e;
  e = report_error([](json& r) { r["config"]["data"] = 3; });
  EXPECT_NE(e.find(results + ": \"config\": \"data\" must be a JSON object"), std::string::npos)
      << e;
  e = report_error([](json& r) { r["time"] = {{"evaluation_seconds", 1.0}}; });
  EXPECT_NE(e.find(results + ": \"time\": missing field \"train_seconds\""), std::string::npos)
      << e;

  json bench = {{"methods",
                 {{{"method", "full"}, {"seconds_per_step", 2.0}},
                  {{"seconds_per_step", 1.0}},
                  {{"method", "lora"}, {"seconds_per_step", "fast"}}}}};
  e = error_of([&] { plot::bench_figure(bench); });
  EXPECT_NE(e.find("\"methods\"[1]: missing field \"method\""), std::string::npos) << e;
  bench["methods"].erase(1);
  e = error_of([&] { plot::bench_figure(bench); });
  EXPECT_NE(e.find("\"methods\"[1]: \"seconds_per_step\" must be a number"), std::string::npos)
      << e;
  json inference = {
      {"kind", "inference"},
      {"configurations", {{{"method", "none"}, {"batch", 1}, {"tokens_per_second", 10.0}}}}};
  e = error_of([&] { plot::bench_figure(inference); });
  EXPECT_NE(e.find("\"configurations\"[0]: missing field \"dtype\""), std::string::npos) << e;
  inference["configurations"][0]["dtype"] = "fp32";
  inference["configurations"][0]["search"] = "greedy";
  inference["configurations"][0]["batch"] = 0;
  e = error_of([&] { plot::bench_figure(inference); });
  EXPECT_NE(e.find("\"batch\" must be at least 1"), std::string::npos) << e;

  // Values whose span no double holds: refused by the axis, by name (found by metrics_jsonl).
  e = error_of([] { plot::linear_axis({-1e308, 1e308}, "training step"); });
  EXPECT_NE(e.find("plot axis \"training step\": the values span more than a double holds"),
            std::string::npos)
      << e;
  // On a log scale the margins of the smallest double, 5e-324, underflow to 0 (found by
  // results_json: a run's percent_of_backbone on Figure 1's axis); 1e-300 still fits.
  e = error_of([] { plot::log_axis({5e-324, 1}, "trainable parameters (%)"); });
  EXPECT_NE(e.find("plot axis \"trainable parameters (%)\": the values span more than a double "
                   "holds on a log scale"),
            std::string::npos)
      << e;
  const plot::Axis tiny = plot::log_axis({1e-300, 1}, "p");
  EXPECT_GT(tiny.lo, 0);
  EXPECT_TRUE(std::isfinite(tiny.fraction(1e-300)));
}

}  // namespace
}  // namespace compacter

// The SVG figures (plot/figures.h) checked by independent programs: every figure is well-formed
// XML to libxml2's `xmllint` (Debian libxml2-utils), and a real browser (headless Chromium,
// Debian chromium-headless-shell, or chromium --headless) renders Figure 1 to a PNG of the
// requested size that is not blank and has each point's colour at the point's pixel. The PNG is
// decoded here (zlib inflate + PNG's five row filters). Without the tool the test is SKIPPED with
// the reason, never passed. Each browser run is bounded by `timeout 60`.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>

#include "compacter/plot/figures.h"
#include "compacter/plot/svg.h"
#include "support/test_support.h"

namespace compacter {
namespace {

using nlohmann::json;

// The path of an executable found on PATH, or "".
std::string which(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

json row(const std::string& method, double percent, double test) {
  return {{"run", method},
          {"method", method},
          {"task", "rte"},
          {"metric", "accuracy"},
          {"percent_of_backbone", percent},
          {"max_train_samples", 100},
          {"test", test},
          {"validation", nullptr}};
}

// Hand-made rows: three methods with known scores and shares of parameters.
json three_rows() {
  return {row("bitfit", 0.05, 52), row("adapter & co", 0.5, 60), row("full", 100, 75)};
}

// Every kind of figure, from hand-made inputs.
std::vector<plot::Figure> every_figure() {
  const json rows = three_rows();
  const std::vector<std::vector<json>> records(
      3, {json{{"type", "train"}, {"step", 10}, {"loss", 2.0}},
          json{{"type", "train"}, {"step", 20}, {"loss", 1.5}},
          json{{"type", "eval"}, {"step", 20}, {"metrics", {{"accuracy", 50.0}}}}});
  const json table3 = {
      {"methods",
       {{{"method", "full"}, {"seconds_per_step", 2.0}, {"peak_memory_bytes", 1000}},
        {{"method", "bitfit"}, {"seconds_per_step", 1.0}, {"peak_memory_bytes", 600}}}}};
  const json inference = {{"kind", "inference"},
                          {"configurations",
                           {{{"method", "none"},
                             {"dtype", "fp32"},
                             {"search", "greedy"},
                             {"batch", 1},
                             {"tokens_per_second", 10.0}},
                            {{"method", "none"},
                             {"dtype", "fp32"},
                             {"search", "greedy"},
                             {"batch", 8},
                             {"tokens_per_second", 50.0}}}}};
  return {plot::figure1(rows),
          plot::figure4(rows),
          plot::loss_curves(rows, records),
          plot::validation_curves(rows, records, ""),
          plot::bench_figure(table3),
          plot::bench_figure(inference)};
}

TEST(PlotTools, EveryFigureIsWellFormedXmlToXmllint) {
  const std::string xmllint = which("xmllint");
  if (xmllint.empty()) GTEST_SKIP() << "xmllint not installed (Debian package libxml2-utils)";
  testing::TempDir dir;
  // The check can fail: a broken file is refused.
  testing::write_file(dir.file("broken.svg"), "<svg><g></svg>");
  ASSERT_NE(std::system((xmllint + " --noout " + dir.file("broken.svg") + " 2>/dev/null").c_str()),
            0);
  for (const plot::Figure& f : every_figure()) {
    ASSERT_FALSE(f.svg.empty()) << f.file << ": " << f.skipped;
    const std::string path = dir.file(f.file);
    testing::write_file(path, f.svg);
    EXPECT_EQ(std::system((xmllint + " --noout " + path).c_str()), 0) << f.file;
  }
}

struct Image {
  uint32_t width = 0, height = 0;
  std::vector<uint8_t> rgb;  // width * height * 3
};

uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

// Decodes an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes).
Image decode_png(const std::string& bytes) {
  const auto* b = reinterpret_cast<const uint8_t*>(bytes.data());
  if (bytes.size() < 8 || std::memcmp(b, "\x89PNG\r\n\x1a\n", 8) != 0)
    throw std::runtime_error("not a PNG");
  Image img;
  int channels = 0;
  std::string idat;
  for (size_t at = 8; at + 12 <= bytes.size();) {
    const uint32_t length = be32(b + at);
    const std::string type(bytes, at + 4, 4);
    const uint8_t* data = b + at + 8;
    if (type == "IHDR") {
      img.width = be32(data), img.height = be32(data + 4);
      const int depth = data[8], colour = data[9], interlace = data[12];
      if (depth != 8 || (colour != 2 && colour != 6) || interlace != 0)
        throw std::runtime_error("unsupported PNG (depth, colour type or interlace)");
      channels = colour == 2 ? 3 : 4;
    } else if (type == "IDAT") {
      idat.append(reinterpret_cast<const char*>(data), length);
    }
    at += 12 + length;
  }
  const size_t stride = size_t(img.width) * channels;
  std::vector<uint8_t> raw((stride + 1) * img.height);
  uLongf size = raw.size();
  if (uncompress(raw.data(), &size, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) !=
          Z_OK ||
      size != raw.size())
    throw std::runtime_error("PNG data does not inflate to the image's size");
  std::vector<uint8_t> px(stride * img.height), zero(stride, 0);
  for (uint32_t y = 0; y < img.height; ++y) {
    const uint8_t filter = raw[y * (stride + 1)];
    const uint8_t* in = &raw[y * (stride + 1) + 1];
    uint8_t* out = &px[y * stride];
    const uint8_t* up = y ? &px[(y - 1) * stride] : zero.data();
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= size_t(channels) ? out[i - channels] : 0, u = up[i];
      const int c = i >= size_t(channels) ? up[i - channels] : 0;
      int pred = 0;
      if (filter == 1) pred = a;
      if (filter == 2) pred = u;
      if (filter == 3) pred = (a + u) / 2;
      if (filter == 4) {
        const int p = a + u - c, pa = std::abs(p - a), pb = std::abs(p - u), pc = std::abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? u : c;
      }
      if (filter > 4) throw std::runtime_error("bad PNG filter");
      out[i] = static_cast<uint8_t>(in[i] + pred);
    }
  }
  for (size_t i = 0; i < size_t(img.width) * img.height; ++i)
    for (int k = 0; k < 3; ++k) img.rgb.push_back(px[i * channels + k]);
  return img;
}

TEST(PlotTools, HeadlessChromiumRendersFigure1) {
  std::string browser = which("chromium-headless-shell"), flags;
  if (browser.empty()) {
    browser = which("chromium");
    flags = " --headless";
  }
  if (browser.empty())
    GTEST_SKIP() << "no headless browser (Debian package chromium-headless-shell, or chromium)";
  if (which("timeout").empty()) GTEST_SKIP() << "no `timeout` (coreutils) to bound the browser";
  testing::TempDir dir;
  const plot::Figure f = plot::figure1(three_rows());
  ASSERT_FALSE(f.svg.empty()) << f.skipped;
  testing::write_file(dir.file("figure1.svg"), f.svg);
  const std::string png = dir.file("figure1.png");
  const int w = static_cast<int>(plot::kWidth), h = static_cast<int>(plot::kHeight);
  const std::string command =
      "timeout 60 " + browser + flags +
      " --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars --no-first-run"
      " --force-device-scale-factor=1 --user-data-dir=" +
      dir.file("profile") + " --screenshot=" + png + " --window-size=" + std::to_string(w) + "," +
      std::to_string(h) + " file://" + dir.file("figure1.svg") + " >" + dir.file("browser.log") +
      " 2>&1";
  const int rc = std::system(command.c_str());
  ASSERT_EQ(rc, 0) << command << "\n" << testing::read_file(dir.file("browser.log"));
  const Image img = decode_png(testing::read_file(png));
  EXPECT_EQ(img.width, uint32_t(w));
  EXPECT_EQ(img.height, uint32_t(h));
  ASSERT_EQ(img.rgb.size(), size_t(w) * h * 3);

  // Not blank: many colours, and a fair share of pixels that are not the white background.
  std::set<uint32_t> colours;
  size_t ink = 0;
  for (size_t i = 0; i < img.rgb.size(); i += 3) {
    colours.insert(uint32_t(img.rgb[i]) << 16 | uint32_t(img.rgb[i + 1]) << 8 | img.rgb[i + 2]);
    if (img.rgb[i] < 240 || img.rgb[i + 1] < 240 || img.rgb[i + 2] < 240) ++ink;
  }
  EXPECT_GE(colours.size(), 8u);
  EXPECT_GT(ink, size_t(w) * h / 100);  // > 1% (grid, frame, text, points)
  EXPECT_LT(ink, size_t(w) * h / 2);

  // The first point (bitfit, the first colour #2b6cb0) is drawn where the data puts it: x at
  // log10(0.05) on log10 0.05..100 widened by 5% of its decades each side, y at 52 on 50..80.
  const double l0 = std::log10(0.05), l1 = 2, pad = (l1 - l0) * 0.05;
  const double x = 80 + (l0 - (l0 - pad)) / (l1 - l0 + 2 * pad) * 460;
  const double y = 380 - (52.0 - 50) / 30 * 320;
  // Its disc: the pixels of about its colour within 12 px, whose centre (pixel i covers
  // [i, i + 1)) is the point's within a pixel, and whose area is about pi r^2 = 50 px.
  double sx = 0, sy = 0;
  int count = 0;
  for (int py = int(y) - 12; py <= int(y) + 12; ++py)
    for (int pxl = int(x) - 12; pxl <= int(x) + 12; ++pxl) {
      if (py < 0 || pxl < 0 || py >= h || pxl >= w) continue;
      const uint8_t* c = &img.rgb[(size_t(py) * w + pxl) * 3];
      if (std::abs(c[0] - 0x2b) + std::abs(c[1] - 0x6c) + std::abs(c[2] - 0xb0) > 40) continue;
      sx += pxl + 0.5, sy += py + 0.5, ++count;
    }
  ASSERT_GE(count, 30) << "no disc of the first colour near (" << x << ", " << y << ")";
  EXPECT_LE(count, 80);
  EXPECT_NEAR(sx / count, x, 1.0);
  EXPECT_NEAR(sy / count, y, 1.0);
}

}  // namespace
}  // namespace compacter

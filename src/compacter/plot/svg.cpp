// The SVG charts: see svg.h.
#include "compacter/plot/svg.h"

#include <algorithm>

#include "compacter/core/error.h"

namespace compacter::plot {

namespace {

const char* const kColours[] = {"#2b6cb0", "#c05621", "#2f855a", "#b83280", "#6b46c1",
                                "#975a16", "#c53030", "#2c7a7b", "#4a5568", "#b7791f"};

const char* colour(size_t i) {
  return kColours[i % (sizeof kColours / sizeof kColours[0])];
}

std::string shorten(const std::string& s, size_t n) {
  return s.size() <= n ? s : s.substr(0, n - 3) + "...";
}

// <text> at (x, y) with the given anchor, size and extra attributes.
std::string text(double x, double y, const std::string& s, const char* anchor, int size,
                 const std::string& extra = "") {
  return "<text x=\"" + px(x) + "\" y=\"" + px(y) + "\" text-anchor=\"" + anchor +
         "\" font-size=\"" + std::to_string(size) + "\"" + (extra.empty() ? "" : " " + extra) +
         ">" + escape_xml(s) + "</text>\n";
}

std::string header(const std::string& title, const std::string& note) {
  std::string out =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
      px(kWidth) + "\" height=\"" + px(kHeight) + "\" viewBox=\"0 0 " + px(kWidth) + " " +
      px(kHeight) + "\" font-family=\"DejaVu Sans, Arial, Helvetica, sans-serif\">\n";
  out += "<title>" + escape_xml(title) + "</title>\n";
  out += "<rect x=\"0\" y=\"0\" width=\"" + px(kWidth) + "\" height=\"" + px(kHeight) +
         "\" fill=\"#ffffff\"/>\n";
  out += text((kPlotLeft + kPlotRight) / 2, 24, title, "middle", 16, "font-weight=\"bold\"");
  if (!note.empty())
    out += text((kPlotLeft + kPlotRight) / 2, 42, note, "middle", 11, "fill=\"#555555\"");
  return out;
}

// Horizontal grid lines, y ticks and their labels, the y label and the plot's frame.
std::string y_axis(const Axis& y) {
  std::string out;
  for (double t : y.ticks) {
    const double py = y_pixel(y, t);
    out += "<line class=\"grid\" x1=\"" + px(kPlotLeft) + "\" y1=\"" + px(py) + "\" x2=\"" +
           px(kPlotRight) + "\" y2=\"" + px(py) + "\" stroke=\"#e2e2e2\"/>\n";
    out += text(kPlotLeft - 6, py + 4, y.tick_label(t), "end", 11);
  }
  const double mid = (kPlotTop + kPlotBottom) / 2;
  out += text(22, mid, y.label, "middle", 12,
              "transform=\"rotate(-90 " + px(22) + " " + px(mid) + ")\"");
  return out;
}

std::string frame() {
  return "<rect class=\"frame\" x=\"" + px(kPlotLeft) + "\" y=\"" + px(kPlotTop) + "\" width=\"" +
         px(kPlotRight - kPlotLeft) + "\" height=\"" + px(kPlotBottom - kPlotTop) +
         "\" fill=\"none\" stroke=\"#333333\"/>\n";
}

// One legend entry per name, from the top right; `lines`: a line swatch, else a square; then
// `dashed`, when given, after a dashed line.
std::string legend(const std::vector<std::string>& names, bool lines,
                   const std::string& dashed = "") {
  std::string out = "<g class=\"legend\">\n";
  const double x = kPlotRight + 16;
  for (size_t i = 0; i < names.size(); ++i) {
    const double y = kPlotTop + 8 + 20.0 * i;
    if (lines)
      out += "<line x1=\"" + px(x) + "\" y1=\"" + px(y) + "\" x2=\"" + px(x + 18) + "\" y2=\"" +
             px(y) + "\" stroke=\"" + colour(i) + "\" stroke-width=\"2\"/>\n" + "<circle cx=\"" +
             px(x + 9) + "\" cy=\"" + px(y) + "\" r=\"3\" fill=\"" + colour(i) + "\"/>\n";
    else
      out += "<rect x=\"" + px(x + 3) + "\" y=\"" + px(y - 6) +
             "\" width=\"12\" height=\"12\" fill=\"" + colour(i) + "\"/>\n";
    out += text(x + 24, y + 4, shorten(names[i], 24), "start", 11);
  }
  if (!dashed.empty()) {
    const double y = kPlotTop + 8 + 20.0 * names.size();
    out += "<line x1=\"" + px(x) + "\" y1=\"" + px(y) + "\" x2=\"" + px(x + 18) + "\" y2=\"" +
           px(y) + "\" stroke=\"#333333\" stroke-dasharray=\"6 4\"/>\n";
    out += text(x + 24, y + 4, shorten(dashed, 24), "start", 11);
  }
  return out + "</g>\n";
}

}  // namespace

double x_pixel(const Axis& x, double v) {
  return kPlotLeft + x.fraction(v) * (kPlotRight - kPlotLeft);
}

double y_pixel(const Axis& y, double v) {
  return kPlotBottom - y.fraction(v) * (kPlotBottom - kPlotTop);
}

std::string escape_xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters are not allowed in XML 1.0 (but tab, newline, carriage return).
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
          out += ' ';
        else
          out += c;
    }
  }
  return out;
}

std::string render_xy(const XYChart& c) {
  std::string out = header(c.title, c.note);
  out += y_axis(c.y);
  for (double t : c.x.ticks) {
    const double x = x_pixel(c.x, t);
    out += "<line class=\"grid\" x1=\"" + px(x) + "\" y1=\"" + px(kPlotTop) + "\" x2=\"" + px(x) +
           "\" y2=\"" + px(kPlotBottom) + "\" stroke=\"#e2e2e2\"/>\n";
    out += text(x, kPlotBottom + 16, c.x.tick_label(t), "middle", 11);
  }
  out += text((kPlotLeft + kPlotRight) / 2, kPlotBottom + 40, c.x.label, "middle", 12);
  out += frame();
  std::vector<std::string> names;
  for (size_t i = 0; i < c.series.size(); ++i) {
    const Series& s = c.series[i];
    check(s.x.size() == s.y.size() && (s.labels.empty() || s.labels.size() == s.x.size()),
          "plot series \"", s.name, "\": x, y and labels differ in length");
    names.push_back(s.name);
    const std::string data = "data-series=\"" + escape_xml(s.name) + "\"";
    out += "<g " + data + ">\n";
    if (s.line && s.x.size() > 1) {
      out += "<polyline class=\"line\" " + data + " fill=\"none\" stroke=\"" + colour(i) +
             "\" stroke-width=\"2\" points=\"";
      for (size_t k = 0; k < s.x.size(); ++k)
        out += (k ? " " : "") + px(x_pixel(c.x, s.x[k])) + "," + px(y_pixel(c.y, s.y[k]));
      out += "\"/>\n";
    }
    for (size_t k = 0; k < s.x.size(); ++k) {
      const double x = x_pixel(c.x, s.x[k]), y = y_pixel(c.y, s.y[k]);
      if (s.markers)
        out += "<circle class=\"point\" " + data + " cx=\"" + px(x) + "\" cy=\"" + px(y) +
               "\" r=\"" + px(kPointRadius) + "\" fill=\"" + colour(i) + "\"/>\n";
      // Labels right of their point, or left of it in the plot's right third (off the legend).
      if (!s.labels.empty()) {
        const bool left = x > kPlotLeft + (kPlotRight - kPlotLeft) * 2 / 3;
        out += text(left ? x - 7 : x + 7, y - 7, s.labels[k], left ? "end" : "start", 11);
      }
    }
    out += "</g>\n";
  }
  out += legend(names, true);
  return out + "</svg>\n";
}

std::string render_bars(const BarChart& c) {
  std::string out = header(c.title, c.note);
  out += y_axis(c.y);
  const size_t n = c.categories.size();
  check(n > 0, "bar chart \"", c.title, "\": no category");
  const double slot = (kPlotRight - kPlotLeft) / n;
  const double base = y_pixel(c.y, std::clamp(0.0, c.y.lo, c.y.hi));
  const double bar = slot * 0.8 / std::max<size_t>(c.series.size(), 1);
  std::vector<std::string> names;
  for (size_t j = 0; j < c.series.size(); ++j) {
    const BarSeries& s = c.series[j];
    check(s.values.size() == n, "bar series \"", s.name, "\": ", s.values.size(), " values for ", n,
          " categories");
    names.push_back(s.name);
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(s.values[i])) continue;
      const double x = kPlotLeft + i * slot + slot * 0.1 + j * bar;
      const double top = y_pixel(c.y, s.values[i]);
      out += "<rect class=\"bar\" data-series=\"" + escape_xml(s.name) + "\" x=\"" + px(x) +
             "\" y=\"" + px(std::min(top, base)) + "\" width=\"" + px(bar) + "\" height=\"" +
             px(std::fabs(base - top)) + "\" fill=\"" + colour(j) + "\"/>\n";
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const double x = kPlotLeft + (i + 0.5) * slot, y = kPlotBottom + 14;
    out += text(x, y, shorten(c.categories[i], 16), "end", 11,
                "transform=\"rotate(-30 " + px(x) + " " + px(y) + ")\"");
  }
  out += text((kPlotLeft + kPlotRight) / 2, kHeight - 8, c.x_label, "middle", 12);
  if (std::isfinite(c.reference)) {
    const double y = y_pixel(c.y, c.reference);
    out += "<line class=\"reference\" x1=\"" + px(kPlotLeft) + "\" y1=\"" + px(y) + "\" x2=\"" +
           px(kPlotRight) + "\" y2=\"" + px(y) +
           "\" stroke=\"#333333\" stroke-dasharray=\"6 4\"/>\n";
  }
  out += frame();
  out += legend(names, false, std::isfinite(c.reference) ? c.reference_label : "");
  return out + "</svg>\n";
}

}  // namespace compacter::plot

// Standalone SVG charts (no script, no external resource): a scatter/line chart and a grouped
// bar chart, each with a title, labelled axes, grid lines at the ticks (plot/axis.h) and a
// legend. Every figure has the same geometry (below), so the pixel of a value follows from its
// axis alone: x = kPlotLeft + fraction * (kPlotRight - kPlotLeft) and
// y = kPlotBottom - fraction * (kPlotBottom - kPlotTop), fraction = Axis::fraction(value).
// Coordinates are written with two decimals and all text is XML-escaped, so the same input gives
// the same bytes. Points are <circle class="point">, lines <polyline class="line">, bars
// <rect class="bar">, each with data-series="NAME".
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "compacter/plot/axis.h"

namespace compacter::plot {

constexpr double kWidth = 760, kHeight = 460;  // the whole figure (px)
constexpr double kPlotLeft = 80, kPlotRight = 540, kPlotTop = 60, kPlotBottom = 380;
constexpr double kPointRadius = 4;

double x_pixel(const Axis& x, double v);
double y_pixel(const Axis& y, double v);

// Text as XML character data or attribute value (& < > " ' escaped).
std::string escape_xml(const std::string& text);

struct Series {
  std::string name;  // in the legend
  std::vector<double> x, y;
  std::vector<std::string> labels;  // empty, or one text per point, written next to it
  bool line = true;                 // join the points in the order given
  bool markers = true;              // a circle on each point
};

struct XYChart {
  std::string title;
  std::string note;  // a small line under the title (what the data is)
  Axis x, y;
  std::vector<Series> series;
};

std::string render_xy(const XYChart& chart);

struct BarSeries {
  std::string name;            // in the legend
  std::vector<double> values;  // one per category; NaN: no bar
};

// Categories along x, one group of bars each (one bar per series); bars start at y = 0 (or the
// axis' low end when 0 is outside it). Category i spans x in [kPlotLeft + i * w, ... + w],
// w = plot width / categories; its bars fill the middle 80%, series j the j-th of equal parts.
struct BarChart {
  std::string title;
  std::string note;
  std::string x_label;
  std::vector<std::string> categories;
  std::vector<BarSeries> series;
  Axis y;
  double reference = NAN;  // a dashed horizontal line at this value (e.g. 100 %), NaN: none
  std::string reference_label;
};

std::string render_bars(const BarChart& chart);

}  // namespace compacter::plot

// Axis scales of the SVG figures (plot/svg.h): a linear axis with "nice" ticks (steps of 1, 2 or
// 5 times a power of ten) over the data padded by 5%, or a log10 axis over the data padded by 5%
// of its decades, and the map from a value to a fraction of the axis. Tick labels use fixed
// formatting, so output is deterministic.
#pragma once
#include <string>
#include <vector>

namespace compacter::plot {

struct Axis {
  std::string label;  // with its unit, e.g. "time per step (% of full fine-tuning)"
  bool log = false;   // log10 scale
  double lo = 0, hi = 1;
  std::vector<double> ticks;

  // The position of `v` along the axis, 0 at lo and 1 at hi (log axes: in log10(v)).
  double fraction(double v) const;
  // The text of a tick (log axes: %g; linear: as many decimals as the tick step needs).
  std::string tick_label(double v) const;
};

// A step of 1, 2 or 5 x 10^k, the smallest not below range / 8 (about 5 to 8 ticks).
double nice_step(double range);

// A linear axis over `values` (finite ones; at least one): the range [min, max] widened by 5% of
// its width on each side (a single value: by max(|v| / 10, 1)), or from 0 when `from_zero` and
// all values are >= 0, then widened to multiples of nice_step(width); ticks every step.
Axis linear_axis(const std::vector<double>& values, std::string label, bool from_zero = false);

// A log10 axis over `values` and `ticks` (all > 0): from the smallest to the largest, widened
// by 5% of that width (in decades) on each side (a single value: half a decade each side first).
// Ticks: `ticks` when given, else the powers of ten inside the range (with 2 and 5 times them
// when that gives fewer than three).
Axis log_axis(const std::vector<double>& values, std::string label,
              const std::vector<double>& ticks = {});

// Fixed formatting of a number for SVG attributes: two decimals ("12.30", "-0.50").
std::string px(double v);

}  // namespace compacter::plot

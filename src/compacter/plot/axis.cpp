// Axis scales and ticks: see axis.h.
#include "compacter/plot/axis.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "compacter/core/error.h"

namespace compacter::plot {

double Axis::fraction(double v) const {
  if (log) return (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo));
  return (v - lo) / (hi - lo);
}

std::string Axis::tick_label(double v) const {
  char buf[32];
  if (log) {
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
  }
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : 1.0;
  const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  if (std::fabs(v) < step * 1e-6) v = 0;  // no "-0"
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

double nice_step(double range) {
  check(range > 0 && std::isfinite(range), "plot axis: range must be positive, not ", range);
  const double raw = range / 8;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / power;
  const double nice = f <= 1 + 1e-9 ? 1 : f <= 2 + 1e-9 ? 2 : f <= 5 + 1e-9 ? 5 : 10;
  return nice * power;
}

Axis linear_axis(const std::vector<double>& values, std::string label, bool from_zero) {
  double mn = INFINITY, mx = -INFINITY;
  for (double v : values)
    if (std::isfinite(v)) mn = std::min(mn, v), mx = std::max(mx, v);
  check(mn <= mx, "plot axis \"", label, "\": no finite value");
  const bool non_negative = mn >= 0;
  if (mx > mn) {
    const double pad = (mx - mn) * 0.05;
    mn -= pad, mx += pad;
  } else {
    const double pad = std::max(std::fabs(mn) / 10, 1.0);
    mn -= pad, mx += pad;
  }
  if (from_zero && non_negative) mn = 0;
  check(std::isfinite(mx - mn), "plot axis \"", label, "\": the values span more than a double ",
        "holds (from ", mn, " to ", mx, " with the margins)");
  const double step = nice_step(mx - mn);
  Axis a;
  a.label = std::move(label);
  a.lo = std::floor(mn / step + 1e-9) * step;
  a.hi = std::ceil(mx / step - 1e-9) * step;
  const int n = static_cast<int>(std::lround((a.hi - a.lo) / step));
  for (int i = 0; i <= n; ++i) a.ticks.push_back(a.lo + i * step);
  return a;
}

Axis log_axis(const std::vector<double>& values, std::string label,
              const std::vector<double>& ticks) {
  Axis a;
  a.label = std::move(label);
  a.log = true;
  double mn = INFINITY, mx = -INFINITY;
  for (const std::vector<double>* list : {&values, &ticks})
    for (double v : *list) {
      check(v > 0 && std::isfinite(v), "plot axis \"", a.label,
            "\": a log scale needs positive values, not ", v);
      mn = std::min(mn, v), mx = std::max(mx, v);
    }
  check(mn <= mx, "plot axis \"", a.label, "\": no value");
  double l0 = std::log10(mn), l1 = std::log10(mx);
  if (l1 - l0 < 1e-12) l0 -= 0.5, l1 += 0.5;
  const double pad = (l1 - l0) * 0.05;
  a.lo = std::pow(10.0, l0 - pad), a.hi = std::pow(10.0, l1 + pad);
  // The margins can leave a double's range (a value of 5e-324 padded below underflows to 0):
  // log10(0) would put every point at infinity.
  check(a.lo > 0 && std::isfinite(a.hi), "plot axis \"", a.label,
        "\": the values span more than a double holds on a log scale (from ", mn, " to ", mx,
        " with the margins)");
  if (!ticks.empty()) {
    a.ticks = ticks;
    std::sort(a.ticks.begin(), a.ticks.end());
    a.ticks.erase(std::unique(a.ticks.begin(), a.ticks.end()), a.ticks.end());
    return a;
  }
  // Powers of ten inside the range; 2 and 5 times them too when that gives fewer than 3.
  const int k0 = static_cast<int>(std::floor(l0 - pad)), k1 = static_cast<int>(std::ceil(l1 + pad));
  for (const std::vector<double>& steps : {std::vector<double>{1}, std::vector<double>{1, 2, 5}}) {
    a.ticks.clear();
    for (int k = k0; k <= k1; ++k)
      for (double m : steps) {
        const double t = m * std::pow(10.0, k);
        if (t >= a.lo * (1 - 1e-12) && t <= a.hi * (1 + 1e-12)) a.ticks.push_back(t);
      }
    if (a.ticks.size() >= 3) break;
  }
  return a;
}

std::string px(double v) {
  char buf[32];
  if (std::fabs(v) < 0.005) v = 0;  // no "-0.00"
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace compacter::plot

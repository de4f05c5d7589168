// The invariant of every figure a fuzz target draws (plot/figures.h): either drawn, as an SVG
// document whose coordinates are all finite (px() of NaN or infinity would write "nan" or "inf"
// into an attribute: a silently broken figure), or skipped with a reason; never both or neither.
#pragma once
#include <string>

#include "compacter/plot/figures.h"

inline void check_figure(const compacter::plot::Figure& f) {
  if (f.svg.empty() == f.skipped.empty()) __builtin_trap();
  if (f.svg.empty()) return;
  if (f.svg.find("<svg") == std::string::npos || f.svg.find("</svg>") == std::string::npos)
    __builtin_trap();
  // Every attribute but data-series (a series' name, which may quote a user's text) holds
  // numbers, colours or fixed words: none may say "nan" or "inf".
  for (size_t open = f.svg.find('<'); open != std::string::npos; open = f.svg.find('<', open + 1)) {
    const size_t close = f.svg.find('>', open);
    if (close == std::string::npos) __builtin_trap();
    std::string tag = f.svg.substr(open, close - open);
    for (size_t at = tag.find("data-series=\""); at != std::string::npos;
         at = tag.find("data-series=\"", at + 1)) {
      const size_t end = tag.find('"', at + 13);
      if (end == std::string::npos) __builtin_trap();
      tag.erase(at, end + 1 - at);
    }
    if (tag.find("nan") != std::string::npos || tag.find("inf") != std::string::npos)
      __builtin_trap();
  }
}

// The int8 layers' per-row mapping (see int8_row_map.h), its loops compiled for AVX-512 and the
// baseline (nn/cpu_clones.h; no fused multiply-adds, so both round alike): element-wise selects
// and products only, no reordered sums.
#include "compacter/nn/int8_row_map.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>

#include "compacter/nn/cpu_clones.h"

namespace compacter::nn {

namespace {

constexpr int kLanes = 16;

// Rows [begin, end) of int8_map_rows. The range is kept per lane (element-wise selects, which the
// compiler vectorises; NaN never enters them) and x * 0 summed per lane tells a NaN or an
// infinity (it is NaN then, else 0).
COMPACTER_CPU_CLONES
void map_rows_chunk(const float* x, int64_t begin, int64_t end, int64_t in, float top,
                    float* shifted, float* lo, float* c, uint8_t* finite) {
  for (int64_t i = begin; i < end; ++i) {
    const float* row = x + i * in;
    float* out = shifted + i * in;
    float low[kLanes], high[kLanes], bad[kLanes];
    for (int j = 0; j < kLanes; ++j) {
      low[j] = std::numeric_limits<float>::infinity();
      high[j] = -std::numeric_limits<float>::infinity();
      bad[j] = 0.0f;
    }
    int64_t k = 0;
    for (; k + kLanes <= in; k += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const float v = row[k + j];
        low[j] = v < low[j] ? v : low[j];
        high[j] = v > high[j] ? v : high[j];
        bad[j] += v * 0.0f;
      }
    for (int j = 0; k + j < in; ++j) {
      const float v = row[k + j];
      low[j] = v < low[j] ? v : low[j];
      high[j] = v > high[j] ? v : high[j];
      bad[j] += v * 0.0f;
    }
    float l = low[0], h = high[0], b = bad[0];
    for (int j = 1; j < kLanes; ++j) {
      l = std::min(l, low[j]);
      h = std::max(h, high[j]);
      b += bad[j];
    }
    if (b != 0.0f || !(l <= h)) {  // NaN (b is NaN then) or an infinity
      lo[i] = 0.0f, c[i] = 1.0f, finite[i] = 0;
      std::fill(out, out + in, 0.0f);
      continue;
    }
    // int8_linear.cpp's grid_scale: none (c = 1) for a constant row (x - lo = 0 there anyway) or a
    // range too wide or too narrow for a finite, non-zero c.
    const float scale = (top + 0.0001f) / (h - l);
    const float ci =
        h > l && scale > 0.0f && scale <= std::numeric_limits<float>::max() ? scale : 1.0f;
    lo[i] = l, c[i] = ci, finite[i] = 1;
    for (int64_t q = 0; q < in; ++q) {
      const float s = (row[q] - l) * ci;
      out[q] = s < 0.0f ? 0.0f : (s > top ? top : s);
    }
  }
}

COMPACTER_CPU_CLONES
void unmap_rows_chunk(float* y, int64_t begin, int64_t end, int64_t out, const float* lo,
                      const float* c, const uint8_t* finite, const float* row_sums) {
  for (int64_t i = begin; i < end; ++i) {
    float* row = y + i * out;
    if (!finite[i]) {
      std::fill(row, row + out, std::numeric_limits<float>::quiet_NaN());
      continue;
    }
    const float ci = c[i], li = lo[i];
    for (int64_t o = 0; o < out; ++o) row[o] = row[o] / ci + li * row_sums[o];
  }
}

// Rows per parallel task: about 16K values.
int64_t grain(int64_t width) {
  return std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(width, 1));
}

}  // namespace

void int8_map_rows(const float* x, int64_t m, int64_t in, int levels, float* shifted, float* lo,
                   float* c, uint8_t* finite) {
  const float top = static_cast<float>(levels);
  at::parallel_for(0, m, grain(in), [&](int64_t begin, int64_t end) {
    map_rows_chunk(x, begin, end, in, top, shifted, lo, c, finite);
  });
}

void int8_unmap_rows(float* y, int64_t m, int64_t out, const float* lo, const float* c,
                     const uint8_t* finite, const float* row_sums) {
  at::parallel_for(0, m, grain(out), [&](int64_t begin, int64_t end) {
    unmap_rows_chunk(y, begin, end, out, lo, c, finite, row_sums);
  });
}

}  // namespace compacter::nn

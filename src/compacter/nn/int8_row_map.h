// The per-row mapping of the int8 layers' oneDNN path (nn/int8_linear.h): each input row onto the
// grid [0, L] of its own range before libtorch's engine quantises it, and each result row back.
// One pass over the rows each way, on libtorch's threads, instead of a chain of tensor operators
// (each a pass over the rows and an allocation).
#pragma once
#include <cstdint>

namespace compacter::nn {

// For each row i of x [m, in]: lo[i] = its minimum, c[i] = (L + 0.0001) / (max - min) (1 for a
// constant row), and shifted[i] = clamp((x[i] - lo[i]) c[i], 0, L); a row holding NaN or an
// infinity gets lo[i] = 0, c[i] = 1, finite[i] = 0 and a zero row, others finite[i] = 1.
void int8_map_rows(const float* x, int64_t m, int64_t in, int levels, float* shifted, float* lo,
                   float* c, uint8_t* finite);

// y [m, out] = y / c[i] + lo[i] row_sums in place; a row whose input was not finite becomes NaN.
void int8_unmap_rows(float* y, int64_t m, int64_t out, const float* lo, const float* c,
                     const uint8_t* finite, const float* row_sums);

}  // namespace compacter::nn

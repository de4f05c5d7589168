// int8 x uint8 products with AVX-512 VNNI, for the int8 linear layers (nn/int8_linear.h), made
// for decoding's few rows (one to a few dozen per call). oneDNN's quantised linear layer, through
// libtorch, costs ~40 us a call however small the product (its dispatch, the input's quantisation
// by libtorch's operators, the output's dequantisation): as long as the fp32 product of a
// 512 x 512 weight at one row, so int8 decoding at batch 1 was no faster than fp32. This kernel
// does the same arithmetic in one pass over the packed weight: each input row mapped onto
// [0, 255] over its own range and rounded (uint8), times the int8 weight, summed in int32
// (vpdpbusd: four uint8 x int8 products added into each int32 lane; exact, no saturation), then
// y[m, n] = acc[m, n] * scale[n] / c[m] + lo[m] * row_sum[n] (int8_linear.h's mapping undone).
// Torch-free; runs on libtorch's intra-op threads over tiles of 64 outputs, any number of rows
// (at 512 and 2,048 rows 0.95-1.22x the speed of oneDNN's blocked kernels on t5-small's shapes,
// about 85% of this machine's vpdpbusd peak at best; README, "int8").
#pragma once

#include <cstdint>
#include <vector>

namespace compacter::nn {

// Whether this CPU (and its operating system) runs the kernel: AVX-512 F, BW and VNNI.
bool int8_rows_available();

// The weight [out, in] (row-major int8) in the kernel's layout: tiles of 64 outputs; within a
// tile, groups of 4 inputs; within a group, the 64 outputs' 4 values in a row (256 bytes). out is
// padded to a multiple of 64 and in to a multiple of 4 with zeros.
struct Int8RowsWeight {
  int64_t out = 0, in = 0, in4 = 0, tiles = 0;  // in4: in rounded up to a multiple of 4
  std::vector<int8_t> packed;                   // tiles * (in4 / 4) * 256 bytes
};
Int8RowsWeight pack_int8_rows(const int8_t* w, int64_t out, int64_t in);

// The smallest and largest of x[0, n) (n > 0); both NaN when any x is NaN. Needs
// int8_rows_available().
void int8_rows_range(const float* x, int64_t n, float& lo, float& hi);

// y = x W^T for x: rows x w.in floats (row-major), y: rows x w.out floats. Row m of x is mapped
// onto the uint8 grid of its own range, u = nearbyint(clamp((x - lo[m]) * c[m], 0, 255)) (lo[m],
// c[m] finite, c[m] > 0), and y[m, n] = (sum_k u[m, k] q[n, k]) * scales[n] / c[m] + lo[m] *
// row_sums[n], where q is the int8 weight, scales its per-row scales and row_sums[n] = scales[n]
// sum_k q[n, k]. Needs int8_rows_available().
void int8_rows_product(const Int8RowsWeight& w, const float* x, int64_t rows, const float* lo,
                       const float* c, const float* scales, const float* row_sums, float* y);

// The int8 weight [out, in] (row-major) back from the kernel's layout.
std::vector<int8_t> unpack_int8_rows(const Int8RowsWeight& w);

}  // namespace compacter::nn

// Rows times an int8 weight with AVX-512 VNNI (see int8_rows.h).
#include "compacter/nn/int8_rows.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "compacter/core/error.h"
#include "compacter/kernels/cpu.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define COMPACTER_INT8_ROWS_X86 1
#endif

namespace compacter::nn {

namespace {

constexpr int64_t kTileOut = 64;               // outputs per tile: four 16-lane registers
constexpr int64_t kGroupBytes = kTileOut * 4;  // one group of 4 inputs for the tile's outputs
constexpr int64_t kRowsPerPass = 4;            // rows whose sums are held in registers at once

// Where weight element (n, k) sits in the packed layout (int8_rows.h); groups = in4 / 4.
int64_t packed_index(int64_t n, int64_t k, int64_t groups) {
  return ((n / kTileOut) * groups + k / 4) * kGroupBytes + (n % kTileOut) * 4 + k % 4;
}

#ifdef COMPACTER_INT8_ROWS_X86
// One tile's sums for rows [0, R) of u: acc[r * 64 + j] = sum_k u[r, k] w[tile row j, k].
template <int R>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void tile_sums(
    const uint8_t* u, int64_t u_stride, const int8_t* tile, int64_t groups, int32_t* acc) {
  __m512i s[R][4];  // held in registers: every loop over r and j fully unrolled
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) s[r][j] = _mm512_setzero_si512();
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* wg = tile + g * kGroupBytes;
    const __m512i w0 = _mm512_loadu_si512(wg);
    const __m512i w1 = _mm512_loadu_si512(wg + 64);
    const __m512i w2 = _mm512_loadu_si512(wg + 128);
    const __m512i w3 = _mm512_loadu_si512(wg + 192);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      int32_t four;
      std::memcpy(&four, u + r * u_stride + g * 4, 4);
      const __m512i x = _mm512_set1_epi32(four);
      s[r][0] = _mm512_dpbusd_epi32(s[r][0], x, w0);
      s[r][1] = _mm512_dpbusd_epi32(s[r][1], x, w1);
      s[r][2] = _mm512_dpbusd_epi32(s[r][2], x, w2);
      s[r][3] = _mm512_dpbusd_epi32(s[r][3], x, w3);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) _mm512_storeu_si512(acc + r * kTileOut + j * 16, s[r][j]);
}

// u[m, k] = nearbyint(clamp((x[m, k] - lo[m]) * c[m], 0, 255)) for k < in, 0 up to in4: the
// same operations, each rounded, as libtorch's quantiser on (x - lo) * c (round to nearest even,
// the default rounding mode).
__attribute__((target("avx512f,avx512bw"))) void quantize_rows(const float* x, int64_t rows,
                                                               int64_t in, int64_t in4,
                                                               const float* lo, const float* c,
                                                               uint8_t* u) {
  const __m512 zero = _mm512_setzero_ps(), top = _mm512_set1_ps(255.0f);
  const __mmask16 all = 0xffff;
  for (int64_t m = 0; m < rows; ++m) {
    const __m512 vlo = _mm512_set1_ps(lo[m]), vc = _mm512_set1_ps(c[m]);
    const float* xm = x + m * in;
    uint8_t* um = u + m * in4;
    for (int64_t k = 0; k < in; k += 16) {
      const __mmask16 live = in - k >= 16 ? __mmask16(0xffff) : __mmask16((1u << (in - k)) - 1);
      __m512 v = _mm512_maskz_loadu_ps(live, xm + k);
      v = _mm512_mul_ps(_mm512_sub_ps(v, vlo), vc);
      v = _mm512_maskz_min_ps(all, _mm512_maskz_max_ps(all, v, zero), top);
      _mm512_mask_cvtepi32_storeu_epi8(um + k, live, _mm512_maskz_cvtps_epi32(all, v));
    }
    for (int64_t k = in; k < in4; ++k) um[k] = 0;
  }
}

__attribute__((target("avx512f"))) void range_of(const float* x, int64_t n, float& lo, float& hi) {
  // The masked forms throughout: GCC 12's unmasked ones pass an undefined register through,
  // which its own flow analysis then reports as uninitialised.
  const __mmask16 all = 0xffff;
  __m512 vlo = _mm512_set1_ps(x[0]), vhi = vlo;
  __mmask16 nan = 0;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 live = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    const __m512 v = _mm512_mask_loadu_ps(vlo, live, x + i);  // dead lanes: a value of x
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    vlo = _mm512_maskz_min_ps(all, vlo, v);
    vhi = _mm512_maskz_max_ps(all, vhi, v);
  }
  float los[16], his[16];
  _mm512_storeu_ps(los, vlo);
  _mm512_storeu_ps(his, vhi);
  lo = *std::min_element(los, los + 16);
  hi = *std::max_element(his, his + 16);
  if (nan) lo = hi = std::numeric_limits<float>::quiet_NaN();
}
#endif

}  // namespace

bool int8_rows_available() {
#ifdef COMPACTER_INT8_ROWS_X86
  static const bool yes = [] {
    const kernels::CpuInfo cpu = kernels::detect_cpu();
    return cpu.has("avx512f") && cpu.has("avx512bw") && cpu.has("avx512_vnni");
  }();
  return yes;
#else
  return false;
#endif
}

std::vector<int8_t> unpack_int8_rows(const Int8RowsWeight& w) {
  std::vector<int8_t> values(static_cast<size_t>(w.out * w.in));
  const int64_t groups = w.in4 / 4;
  for (int64_t n = 0; n < w.out; ++n)
    for (int64_t k = 0; k < w.in; ++k)
      values[static_cast<size_t>(n * w.in + k)] =
          w.packed[static_cast<size_t>(packed_index(n, k, groups))];
  return values;
}

Int8RowsWeight pack_int8_rows(const int8_t* w, int64_t out, int64_t in) {
  check(out > 0 && in > 0, "int8 rows: a weight needs at least one row and column, got ", out,
        " x ", in);
  Int8RowsWeight p;
  p.out = out;
  p.in = in;
  p.in4 = (in + 3) / 4 * 4;
  p.tiles = (out + kTileOut - 1) / kTileOut;
  const int64_t groups = p.in4 / 4;
  p.packed.assign(static_cast<size_t>(p.tiles * groups * kGroupBytes), 0);
  for (int64_t n = 0; n < out; ++n)
    for (int64_t k = 0; k < in; ++k)
      p.packed[static_cast<size_t>(packed_index(n, k, groups))] = w[n * in + k];
  return p;
}

void int8_rows_range(const float* x, int64_t n, float& lo, float& hi) {
  check(int8_rows_available() && n > 0, "int8 rows: a range needs AVX-512 and values");
#ifdef COMPACTER_INT8_ROWS_X86
  range_of(x, n, lo, hi);
#else
  (void)x, (void)lo, (void)hi;
#endif
}

void int8_rows_product(const Int8RowsWeight& w, const float* x, int64_t rows, const float* lo,
                       const float* c, const float* scales, const float* row_sums, float* y) {
  check(int8_rows_available(), "int8 rows: this CPU lacks AVX-512 VNNI");
#ifdef COMPACTER_INT8_ROWS_X86
  std::vector<uint8_t> quantised(static_cast<size_t>(rows * w.in4));
  const uint8_t* u = quantised.data();
  quantize_rows(x, rows, w.in, w.in4, lo, c, quantised.data());
  const int64_t groups = w.in4 / 4;
  at::parallel_for(0, w.tiles, 1, [&](int64_t first, int64_t last) {
    int32_t acc[kRowsPerPass * kTileOut];
    for (int64_t t = first; t < last; ++t) {
      const int8_t* tile = w.packed.data() + t * groups * kGroupBytes;
      const int64_t n0 = t * kTileOut, width = std::min(kTileOut, w.out - n0);
      for (int64_t m0 = 0; m0 < rows; m0 += kRowsPerPass) {
        const int64_t r = std::min(kRowsPerPass, rows - m0);
        const uint8_t* um = u + m0 * w.in4;
        switch (r) {
          case 1:
            tile_sums<1>(um, w.in4, tile, groups, acc);
            break;
          case 2:
            tile_sums<2>(um, w.in4, tile, groups, acc);
            break;
          case 3:
            tile_sums<3>(um, w.in4, tile, groups, acc);
            break;
          default:
            tile_sums<4>(um, w.in4, tile, groups, acc);
            break;
        }
        for (int64_t i = 0; i < r; ++i) {
          float* ym = y + (m0 + i) * w.out + n0;
          const int32_t* a = acc + i * kTileOut;
          const float ci = c[m0 + i], li = lo[m0 + i];
          for (int64_t j = 0; j < width; ++j)
            ym[j] = static_cast<float>(a[j]) * scales[n0 + j] / ci + li * row_sums[n0 + j];
        }
      }
    }
  });
#else
  (void)w, (void)x, (void)rows, (void)scales, (void)row_sums, (void)c, (void)lo, (void)y;
#endif
}

}  // namespace compacter::nn

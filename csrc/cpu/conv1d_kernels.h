// Inner loops of the CPU direct 1-D convolution (forward with the bias+activation epilogue,
// grad_input, grad_weight + grad_bias), over raw float/double pointers.
//
// Compiled once per instruction set (csrc/cpu/conv1d_isa_*.cpp, the same scheme as
// bias_act_kernels.h): no torch code here, so the compiler may vectorise for that ISA.
//
// All loops run along the sequence (contiguous) axis, which is what vectorises; with stride 1
// the input reads are contiguous too (a separate instantiation with the stride a compile-time
// 1). Every sum is taken in a fixed order that depends only on the shapes, never on the
// thread count: results are bitwise reproducible.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../activations.h"
#include "conv1d_table.h"

#ifndef LIGHTDL_ISA
#error "define LIGHTDL_ISA before including conv1d_kernels.h"
#endif

namespace lightdl {
namespace cpu {
namespace LIGHTDL_ISA {
namespace {

// Forward register tile: OB output channels x LT output positions. 4 x 32 floats are eight
// 512-bit accumulators (sixteen 256-bit ones): every input vector loaded is used OB times.
template <typename T>
constexpr int kLT = 128 / static_cast<int>(sizeof(T));  // 32 floats, 16 doubles
constexpr int kOB = 4;

// acc[ob][j] += sum_{c,k} w[o+ob, c, k] * xp[c, (l0 + j) * S + k * D]; a full tile,
// compile-time stride when S1.
template <typename T, bool S1>
inline void fwd_tile_full(const T* __restrict xp, const T* __restrict w, const Conv1dGeom& g,
                          int64_t o, int64_t l0, T (&acc)[kOB][kLT<T>]) {
  constexpr int LT = kLT<T>;
  const int64_t CK = g.C * g.K;
  const int64_t s = S1 ? 1 : g.S;
  for (int64_t c = 0; c < g.C; ++c) {
    const T* xc = xp + c * g.Lp + l0 * s;
    const T* wc = w + o * CK + c * g.K;
    for (int64_t k = 0; k < g.K; ++k) {
      const T* xr = xc + k * g.D;
      T wv[kOB];
      for (int ob = 0; ob < kOB; ++ob) wv[ob] = wc[ob * CK + k];
      T xv[LT];
      for (int j = 0; j < LT; ++j) xv[j] = xr[j * s];
      for (int ob = 0; ob < kOB; ++ob)
        for (int j = 0; j < LT; ++j) acc[ob][j] += wv[ob] * xv[j];
    }
  }
}

// The same for a partial tile (last channels or positions).
template <typename T>
inline void fwd_tile_part(const T* __restrict xp, const T* __restrict w, const Conv1dGeom& g,
                          int64_t o, int64_t nb, int64_t l0, int64_t lt,
                          T (&acc)[kOB][kLT<T>]) {
  const int64_t CK = g.C * g.K;
  for (int64_t ob = 0; ob < nb; ++ob)
    for (int64_t c = 0; c < g.C; ++c) {
      const T* xc = xp + c * g.Lp + l0 * g.S;
      const T* wc = w + (o + ob) * CK + c * g.K;
      for (int64_t k = 0; k < g.K; ++k) {
        const T* xr = xc + k * g.D;
        const T wv = wc[k];
        for (int64_t j = 0; j < lt; ++j) acc[ob][j] += wv * xr[j * g.S];
      }
    }
}

template <Act A, typename T>
void fwd(const T* __restrict xp, const T* __restrict w, const T* __restrict b, T* __restrict out,
         T* __restrict pre, const Conv1dGeom& g, int64_t o0, int64_t o1, T alpha) {
  constexpr int LT = kLT<T>;
  for (int64_t o = o0; o < o1; o += kOB) {
    const int64_t nb = std::min<int64_t>(kOB, o1 - o);
    for (int64_t l0 = 0; l0 < g.Lo; l0 += LT) {
      const int64_t lt = std::min<int64_t>(LT, g.Lo - l0);
      T acc[kOB][LT];
      for (int ob = 0; ob < kOB; ++ob)
        for (int j = 0; j < LT; ++j) acc[ob][j] = T(0);
      if (nb == kOB && lt == LT) {
        if (g.S == 1) fwd_tile_full<T, true>(xp, w, g, o, l0, acc);
        else fwd_tile_full<T, false>(xp, w, g, o, l0, acc);
      } else {
        fwd_tile_part<T>(xp, w, g, o, nb, l0, lt, acc);
      }
      // Epilogue while the tile is in registers: bias, activation, and the pre-activation
      // (without bias, what the backward's bias_act_backward takes) when it is needed.
      for (int64_t ob = 0; ob < nb; ++ob) {
        const T bb = b != nullptr ? b[o + ob] : T(0);
        T* orow = out + (o + ob) * g.Lo + l0;
        if (pre != nullptr) {
          T* prow = pre + (o + ob) * g.Lo + l0;
          for (int64_t j = 0; j < lt; ++j) prow[j] = acc[ob][j];
        }
        for (int64_t j = 0; j < lt; ++j) orow[j] = ActMath<A>::fwd(acc[ob][j] + bb, alpha);
      }
    }
  }
}

// gxp[c, l * S + k * D] += w[o, c, k] * gz[o, l], for one batch element, in (c, o, k, l)
// order. With stride 1 every update is a contiguous axpy of a row that stays in L1.
template <typename T>
void bwd_input(const T* __restrict gz, const T* __restrict w, T* __restrict gxp,
               const Conv1dGeom& g) {
  const int64_t CK = g.C * g.K;
  std::memset(gxp, 0, sizeof(T) * g.C * g.Lp);
  for (int64_t c = 0; c < g.C; ++c) {
    T* row = gxp + c * g.Lp;
    for (int64_t o = 0; o < g.O; ++o) {
      const T* gr = gz + o * g.Lo;
      const T* wr = w + o * CK + c * g.K;
      for (int64_t k = 0; k < g.K; ++k) {
        const T wv = wr[k];
        T* dst = row + k * g.D;
        if (g.S == 1) {
          for (int64_t l = 0; l < g.Lo; ++l) dst[l] += wv * gr[l];
        } else {
          for (int64_t l = 0; l < g.Lo; ++l) dst[l * g.S] += wv * gr[l];
        }
      }
    }
  }
}

// sum_l a[l] * b[l * s] in kLanes independent partial sums (vectorisable without
// reassociating one sum), then the lanes in order.
template <typename T, bool S1>
inline T dot(const T* __restrict a, const T* __restrict b, int64_t n, int64_t s) {
  constexpr int kLanes = 16;
  T lanes[kLanes] = {};
  int64_t l = 0;
  for (; l + kLanes <= n; l += kLanes)
    for (int q = 0; q < kLanes; ++q) lanes[q] += a[l + q] * b[(l + q) * (S1 ? 1 : s)];
  T total = T(0);
  for (; l < n; ++l) total += a[l] * b[l * (S1 ? 1 : s)];
  for (int q = 0; q < kLanes; ++q) total += lanes[q];
  return total;
}

template <typename T>
inline T row_sum(const T* __restrict a, int64_t n) {
  constexpr int kLanes = 16;
  T lanes[kLanes] = {};
  int64_t l = 0;
  for (; l + kLanes <= n; l += kLanes)
    for (int q = 0; q < kLanes; ++q) lanes[q] += a[l + q];
  T total = T(0);
  for (; l < n; ++l) total += a[l];
  for (int q = 0; q < kLanes; ++q) total += lanes[q];
  return total;
}

// gw[o, c, k] = sum_n sum_l gz[n, o, l] * xp[n, c, l * S + k * D] for o in [o0, o1), batch
// elements in order; gb[o] = sum_n sum_l gz[n, o, l] when gb is given.
template <typename T>
void bwd_weight(const T* __restrict gz, const T* __restrict xp, T* __restrict gw,
                T* __restrict gb, const Conv1dGeom& g, int64_t o0, int64_t o1) {
  const int64_t CK = g.C * g.K;
  for (int64_t o = o0; o < o1; ++o) {
    T* gwo = gw + o * CK;
    for (int64_t i = 0; i < CK; ++i) gwo[i] = T(0);
    T bsum = T(0);
    for (int64_t n = 0; n < g.N; ++n) {
      const T* gr = gz + (n * g.O + o) * g.Lo;
      const T* xn = xp + n * g.C * g.Lp;
      for (int64_t c = 0; c < g.C; ++c)
        for (int64_t k = 0; k < g.K; ++k) {
          const T* xr = xn + c * g.Lp + k * g.D;
          gwo[c * g.K + k] += g.S == 1 ? dot<T, true>(gr, xr, g.Lo, 1)
                                       : dot<T, false>(gr, xr, g.Lo, g.S);
        }
      if (gb != nullptr) bsum += row_sum(gr, g.Lo);
    }
    if (gb != nullptr) gb[o] = bsum;
  }
}

template <typename T>
Conv1dTable<T> make_conv1d_table() {
  Conv1dTable<T> t{};
#define LIGHTDL_FILL(NAME) t.fwd[static_cast<int>(Act::NAME)] = &fwd<Act::NAME, T>;
  LIGHTDL_FILL(Identity)
  LIGHTDL_FILL(ReLU)
  LIGHTDL_FILL(LeakyReLU)
  LIGHTDL_FILL(Sigmoid)
  LIGHTDL_FILL(Tanh)
  LIGHTDL_FILL(GELU)
  LIGHTDL_FILL(GELUTanh)
  LIGHTDL_FILL(SiLU)
  LIGHTDL_FILL(Step)
  LIGHTDL_FILL(Sign)
#undef LIGHTDL_FILL
  t.bwd_input = &bwd_input<T>;
  t.bwd_weight = &bwd_weight<T>;
  return t;
}

}  // namespace

const Conv1dTable<float>& conv1d_table_f32() {
  static const Conv1dTable<float> t = make_conv1d_table<float>();
  return t;
}
const Conv1dTable<double>& conv1d_table_f64() {
  static const Conv1dTable<double> t = make_conv1d_table<double>();
  return t;
}

}  // namespace LIGHTDL_ISA
}  // namespace cpu
}  // namespace lightdl

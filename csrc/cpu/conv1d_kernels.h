// Inner loops of the CPU direct 1-D convolution, over raw float/double pointers: the forward
// with the bias+activation epilogue, and the whole backward (act', grad_bias, grad_weight,
// grad_input) in one pass over the incoming gradient.
//
// Compiled once per instruction set (csrc/cpu/conv1d_isa_*.cpp, the same scheme as
// bias_act_kernels.h): no torch code here, so the compiler may vectorise for that ISA.
//
// All loops run along the sequence (contiguous) axis, which is what vectorises; the input is
// in the phased layout (csrc/conv1d_math.h), so its reads are contiguous for every stride.
// Every sum is taken in a fixed order that depends only on the shapes, never on the
// thread count: results are bitwise reproducible.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../activations.h"
#include "conv1d_table.h"

#ifndef LIGHTDL_ISA
#error "define LIGHTDL_ISA before including conv1d_kernels.h"
#endif

namespace lightdl {
namespace cpu {
namespace LIGHTDL_ISA {
namespace {

// conv1d_tap for every k, computed once per call: its division and modulo cost more than a
// whole tap of the inner loop.
inline std::vector<int64_t> tap_offsets(const Conv1dGeom& g) {
  std::vector<int64_t> taps(static_cast<size_t>(g.K));
  for (int64_t k = 0; k < g.K; ++k) taps[k] = conv1d_tap(g, k);
  return taps;
}

// Forward register tile: OB output channels x LT output positions. 4 x 32 floats are eight
// 512-bit accumulators (sixteen 256-bit ones): every input vector loaded is used OB times.
template <typename T>
constexpr int kLT = 128 / static_cast<int>(sizeof(T));  // 32 floats, 16 doubles
constexpr int kOB = 4;

// acc[ob][j] = sum_{c,k} w[o+ob, c, k] * x[c, (l0 + j) S + k D], a full OB x LT tile. Every
// sum runs over (c, k) in order, the same order as every other tile shape here, so the
// backward's recomputed pre-activation equals the forward's bit for bit.
template <typename T, int OB, int LT>
inline void tile_full(const T* __restrict xph, const T* __restrict w, const Conv1dGeom& g,
                      const int64_t* taps, int64_t o, int64_t l0, T (&acc)[OB][LT]) {
  const int64_t CK = g.C * g.K, R = g.S * g.Lph;
  for (int64_t c = 0; c < g.C; ++c) {
    const T* xc = xph + c * R + l0;
    const T* wc = w + o * CK + c * g.K;
    for (int64_t k = 0; k < g.K; ++k) {
      const T* xr = xc + taps[k];
      T wv[OB];
      for (int ob = 0; ob < OB; ++ob) wv[ob] = wc[ob * CK + k];
      for (int ob = 0; ob < OB; ++ob)
        for (int j = 0; j < LT; ++j) acc[ob][j] += wv[ob] * xr[j];
    }
  }
}

// The same for a partial tile (last channels or positions).
template <typename T>
inline void fwd_tile_part(const T* __restrict xph, const T* __restrict w, const Conv1dGeom& g,
                          const int64_t* taps, int64_t o, int64_t nb, int64_t l0, int64_t lt,
                          T (&acc)[kOB][kLT<T>]) {
  const int64_t CK = g.C * g.K, R = g.S * g.Lph;
  for (int64_t ob = 0; ob < nb; ++ob)
    for (int64_t c = 0; c < g.C; ++c) {
      const T* xc = xph + c * R + l0;
      const T* wc = w + (o + ob) * CK + c * g.K;
      for (int64_t k = 0; k < g.K; ++k) {
        const T* xr = xc + taps[k];
        const T wv = wc[k];
        for (int64_t j = 0; j < lt; ++j) acc[ob][j] += wv * xr[j];
      }
    }
}

template <Act A, typename T>
void fwd(const T* __restrict xph, const T* __restrict w, const T* __restrict b,
         T* __restrict out, const Conv1dGeom& g, int64_t o0, int64_t o1, T alpha) {
  constexpr int LT = kLT<T>;
  const std::vector<int64_t> taps = tap_offsets(g);
  for (int64_t o = o0; o < o1; o += kOB) {
    const int64_t nb = std::min<int64_t>(kOB, o1 - o);
    for (int64_t l0 = 0; l0 < g.Lo; l0 += LT) {
      const int64_t lt = std::min<int64_t>(LT, g.Lo - l0);
      T acc[kOB][LT];
      for (int ob = 0; ob < kOB; ++ob)
        for (int j = 0; j < LT; ++j) acc[ob][j] = T(0);
      if (nb == kOB && lt == LT) tile_full<T, kOB, LT>(xph, w, g, taps.data(), o, l0, acc);
      else fwd_tile_part<T>(xph, w, g, taps.data(), o, nb, l0, lt, acc);
      // Epilogue while the tile is in registers: bias and activation. Nothing else is stored:
      // the backward recomputes the pre-activation.
      for (int64_t ob = 0; ob < nb; ++ob) {
        const T bb = b != nullptr ? b[o + ob] : T(0);
        T* orow = out + (o + ob) * g.Lo + l0;
        for (int64_t j = 0; j < lt; ++j) orow[j] = ActMath<A>::fwd(acc[ob][j] + bb, alpha);
      }
    }
  }
}

// z[ob, l] = sum_{c,k} w[o + ob, c, k] x[c, l S + k D] for nb <= kOB output channels, into
// rows z (nb, Lo) in L1, with the forward's register tiles.
template <typename T>
inline void conv_rows(const T* __restrict xn, const T* __restrict w, const Conv1dGeom& g,
                      const int64_t* taps, int64_t o, int64_t nb, T* __restrict z) {
  constexpr int LT = kLT<T>;
  for (int64_t l0 = 0; l0 < g.Lo; l0 += LT) {
    const int64_t lt = std::min<int64_t>(LT, g.Lo - l0);
    T acc[kOB][LT];
    for (int ob = 0; ob < kOB; ++ob)
      for (int j = 0; j < LT; ++j) acc[ob][j] = T(0);
    if (nb == kOB && lt == LT) tile_full<T, kOB, LT>(xn, w, g, taps, o, l0, acc);
    else fwd_tile_part<T>(xn, w, g, taps, o, nb, l0, lt, acc);
    for (int64_t ob = 0; ob < nb; ++ob)
      for (int64_t j = 0; j < lt; ++j) z[ob * g.Lo + l0 + j] = acc[ob][j];
  }
}

// sum_l a[l] * b[l] in kLanes independent partial sums (vectorisable without reassociating
// one sum), then the lanes in order.
template <typename T>
inline T dot(const T* __restrict a, const T* __restrict b, int64_t n) {
  constexpr int kLanes = 32;  // 2 AVX-512 float accumulators: FMA latency half hidden
  T lanes[kLanes] = {};
  int64_t l = 0;
  for (; l + kLanes <= n; l += kLanes)
    for (int q = 0; q < kLanes; ++q) lanes[q] += a[l + q] * b[l + q];
  T total = T(0);
  for (; l < n; ++l) total += a[l] * b[l];
  for (int q = 0; q < kLanes; ++q) total += lanes[q];
  return total;
}

// out[i] = sum_l a[l] * b_i[l] for four rows b_i at once: a is loaded once for four
// independent accumulator chains (one dot per chain would wait on the FMA latency).
template <typename T>
inline void dot4(const T* __restrict a, const T* __restrict b0, const T* __restrict b1,
                 const T* __restrict b2, const T* __restrict b3, int64_t n, T (&out)[4]) {
  constexpr int V = 64 / static_cast<int>(sizeof(T));  // one 512-bit vector
  T acc[4][V] = {};
  int64_t l = 0;
  for (; l + V <= n; l += V)
    for (int q = 0; q < V; ++q) {
      const T av = a[l + q];
      acc[0][q] += av * b0[l + q];
      acc[1][q] += av * b1[l + q];
      acc[2][q] += av * b2[l + q];
      acc[3][q] += av * b3[l + q];
    }
  T t[4] = {T(0), T(0), T(0), T(0)};
  for (; l < n; ++l) {
    t[0] += a[l] * b0[l];
    t[1] += a[l] * b1[l];
    t[2] += a[l] * b2[l];
    t[3] += a[l] * b3[l];
  }
  for (int i = 0; i < 4; ++i) {
    for (int q = 0; q < V; ++q) t[i] += acc[i][q];
    out[i] = t[i];
  }
}

template <typename T>
inline T row_sum(const T* __restrict a, int64_t n) {
  constexpr int kLanes = 32;  // 2 AVX-512 float accumulators: FMA latency half hidden
  T lanes[kLanes] = {};
  int64_t l = 0;
  for (; l + kLanes <= n; l += kLanes)
    for (int q = 0; q < kLanes; ++q) lanes[q] += a[l + q];
  T total = T(0);
  for (; l < n; ++l) total += a[l];
  for (int q = 0; q < kLanes; ++q) total += lanes[q];
  return total;
}

// gxph[c, r Lph + m] += sum_{ob < nb} sum_{k in phase r} w[o0 + ob, c, k] gz_ob[m - q_k]
// (tap k = phase r, offset q_k; see conv1d_tap): grad_input as a correlation over the
// positions of the (phased, padded) input, accumulated in registers over the block's channels
// and taps, one load and store of gxph per tile and block.
template <typename T>
void grad_input_block(const T* __restrict gzp, int64_t Lz, int64_t M, const T* __restrict w,
                      const Conv1dGeom& g, const int64_t* phase, const int64_t* shift,
                      int64_t o0, int64_t nb, T* __restrict gxph) {
  constexpr int LT = 2 * kLT<T>;
  const int64_t CK = g.C * g.K, R = g.S * g.Lph;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t r = 0; r < g.S; ++r) {
      T* dst = gxph + c * R + r * g.Lph;
      for (int64_t m0 = 0; m0 < g.Lph; m0 += LT) {
        const int64_t lt = std::min<int64_t>(LT, g.Lph - m0);
        T acc[LT];
        for (int j = 0; j < LT; ++j) acc[j] = j < lt ? dst[m0 + j] : T(0);
        for (int64_t ob = 0; ob < nb; ++ob)
          for (int64_t k = 0; k < g.K; ++k) {
            if (phase[k] != r) continue;  // another phase
            const T* src = gzp + ob * Lz + M + m0 - shift[k];
            const T wv = w[(o0 + ob) * CK + c * g.K + k];
            for (int j = 0; j < LT; ++j) acc[j] += wv * src[j];
          }
        for (int64_t j = 0; j < lt; ++j) dst[m0 + j] = acc[j];
      }
    }
}

template <Act A, typename T>
void bwd(const T* __restrict grad, const T* __restrict xph, const T* __restrict w,
         const T* __restrict b, T* __restrict gx, T* __restrict gw_acc, T* __restrict gb_acc,
         T* __restrict gxph, T* __restrict zrow, const Conv1dGeom& g, int64_t n0, int64_t n1,
         T alpha) {
  const int64_t CK = g.C * g.K, R = g.S * g.Lph;
  const std::vector<int64_t> taps = tap_offsets(g);
  std::vector<int64_t> phase(taps.size()), shift(taps.size());  // tap k = phase * Lph + shift
  for (size_t k = 0; k < taps.size(); ++k) {
    phase[k] = (static_cast<int64_t>(k) * g.D) % g.S;
    shift[k] = (static_cast<int64_t>(k) * g.D) / g.S;
  }
  // gz rows of one channel block with M zeros either side: the grad_input correlation then
  // reads them without bounds tests (M covers the largest tap offset and the phase overhang).
  const int64_t M = (g.K - 1) * g.D / g.S + 2, Lz = g.Lo + 2 * M;
  // (+ one tile: a partial last tile reads, and discards, up to 2 kLT values past the end.)
  std::vector<T> gzp(static_cast<size_t>(kOB * Lz + 2 * kLT<T>), T(0));
  for (int64_t n = n0; n < n1; ++n) {
    const T* xn = xph + n * g.C * R;
    if (gx != nullptr) std::memset(gxph, 0, sizeof(T) * g.C * R);
    for (int64_t o0 = 0; o0 < g.O; o0 += kOB) {
      const int64_t nb = std::min<int64_t>(kOB, g.O - o0);
      if (A != Act::Identity) conv_rows(xn, w, g, taps.data(), o0, nb, zrow);
      for (int64_t ob = 0; ob < nb; ++ob) {
        const int64_t o = o0 + ob;
        const T* gr = grad + (n * g.O + o) * g.Lo;
        T* gz = gzp.data() + ob * Lz + M;  // this row's gz, zero margins either side
        if (A != Act::Identity) {  // act' applied once, to a row still in L1
          const T* z = zrow + ob * g.Lo;
          const T bo = b != nullptr ? b[o] : T(0);
          for (int64_t l = 0; l < g.Lo; ++l) gz[l] = gr[l] * ActMath<A>::grad(z[l] + bo, alpha);
        } else {
          std::memcpy(gz, gr, sizeof(T) * g.Lo);
        }
        if (gb_acc != nullptr) gb_acc[o] += row_sum(gz, g.Lo);
        if (gw_acc != nullptr)
          for (int64_t c = 0; c < g.C; ++c) {
            const T* xc = xn + c * R;
            T* acc = gw_acc + o * CK + c * g.K;
            int64_t k = 0;
            for (; k + 4 <= g.K; k += 4) {
              T d[4];
              dot4(gz, xc + taps[k], xc + taps[k + 1], xc + taps[k + 2], xc + taps[k + 3], g.Lo, d);
              for (int i = 0; i < 4; ++i) acc[k + i] += d[i];
            }
            for (; k < g.K; ++k) acc[k] += dot(gz, xc + taps[k], g.Lo);
          }
      }
      if (gx != nullptr) grad_input_block(gzp.data(), Lz, M, w, g, phase.data(), shift.data(), o0, nb, gxph);
    }
    if (gx == nullptr) continue;
    // Back from the phased, padded layout: padded position m S + r is input position
    // m S + r - P.
    for (int64_t c = 0; c < g.C; ++c) {
      T* dst = gx + (n * g.C + c) * g.L;
      const T* src = gxph + c * R;
      if (g.S == 1) {
        std::memcpy(dst, src + g.P, sizeof(T) * g.L);
        continue;
      }
      for (int64_t r = 0; r < g.S; ++r)
        for (int64_t m = 0; m < g.Lph; ++m) {
          const int64_t i = m * g.S + r - g.P;
          if (i >= 0 && i < g.L) dst[i] = src[r * g.Lph + m];
        }
    }
  }
}

template <typename T>
Conv1dTable<T> make_conv1d_table() {
  Conv1dTable<T> t{};
#define LIGHTDL_FILL(NAME)                                      \
  t.fwd[static_cast<int>(Act::NAME)] = &fwd<Act::NAME, T>;      \
  t.bwd[static_cast<int>(Act::NAME)] = &bwd<Act::NAME, T>;
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

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
#include <type_traits>
#include <vector>

#include "../activations.h"
#include "aligned_vec.h"
#include "conv1d_table.h"
#include "vec64.h"

#ifndef LIGHTDL_ISA
#error "define LIGHTDL_ISA before including conv1d_kernels.h"
#endif

// LIGHTDL_CONV1D_VEC (set per ISA build): the bytes of the vectors that hold the tiles and
// partial sums, the ISA's register width: 64 for AVX-512, 32 for AVX2, 16 for the baseline.
// Wider GCC vectors than the registers are split by the compiler, and with AVX2 the 64-byte
// tiles went through the stack lane by lane: the signal shape's forward took 22.8 ms against
// 1.6 ms with AVX-512 and 3.3 ms for oneDNN (AMD EPYC, 1 thread).
#ifndef LIGHTDL_CONV1D_VEC
#define LIGHTDL_CONV1D_VEC 16
#endif

namespace lightdl {
namespace cpu {
namespace LIGHTDL_ISA {
namespace {

template <typename T>
using VecT = typename VecN<T, LIGHTDL_CONV1D_VEC>::type;  // one register
template <typename T>
constexpr int kLanes = LIGHTDL_CONV1D_VEC / static_cast<int>(sizeof(T));

// conv1d_tap for every k, computed once per call: its division and modulo cost more than a
// whole tap of the inner loop.
inline std::vector<int64_t> tap_offsets(const Conv1dGeom& g) {
  std::vector<int64_t> taps(static_cast<size_t>(g.K));
  for (int64_t k = 0; k < g.K; ++k) taps[k] = conv1d_tap(g, k);
  return taps;
}

// Forward register tile: OB output channels x LT output positions, two vectors per channel:
// eight accumulator registers, and every input vector loaded is used OB times.
template <typename T>
constexpr int kLT = 2 * kLanes<T>;  // AVX-512: 32 floats, 16 doubles
constexpr int kOB = 4;

// acc[ob][j] += sum_{c,k} w[o+ob, c, k] * x[c, (l0 + j) S + k D] for a partial tile (last
// channels or positions); full tiles are tile_full_vec's. Every sum runs over (c, k) in
// order, as there, and the backward recomputes each tile with the same function as the
// forward: its pre-activation equals the forward's bit for bit.
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

// Full tiles and the reductions below keep their accumulators in GCC vectors (VecT, see
// vec64.h), which the compiler keeps in registers.

// A full tile: kOB x kLT accumulators as kOB x 2 vectors. Same sums in the same (c, k) order
// as fwd_tile_part; the forward and the backward's recomputation both use this function for
// tiles of kOB channels, so their pre-activations agree bit for bit.
template <typename T>
inline void tile_full_vec(const T* __restrict xph, const T* __restrict w, const Conv1dGeom& g,
                          const int64_t* taps, int64_t o, int64_t l0,
                          VecT<T> (&acc)[kOB][2]) {
  using V = VecT<T>;
  static_assert(2 * kLanes<T> == kLT<T>, "a tile row is two vectors");
  const int64_t CK = g.C * g.K, R = g.S * g.Lph;
  for (int ob = 0; ob < kOB; ++ob) acc[ob][0] = acc[ob][1] = V{};
  for (int64_t c = 0; c < g.C; ++c) {
    const T* xc = xph + c * R + l0;
    const T* wc = w + o * CK + c * g.K;
    for (int64_t k = 0; k < g.K; ++k) {
      const T* xr = xc + taps[k];
      const V x0 = load_as<V>(xr), x1 = load_as<V>(xr + kLanes<T>);
      for (int ob = 0; ob < kOB; ++ob) {
        const T wv = wc[ob * CK + k];
        acc[ob][0] += wv * x0;
        acc[ob][1] += wv * x1;
      }
    }
  }
}

// Row ob of a full tile as a plain array, which the epilogue loops vectorise over (element
// access of the vector variables would run them one lane at a time).
template <typename T>
inline void tile_row(const VecT<T> (&acc)[2], T (&row)[kLT<T>]) {
  std::memcpy(row, &acc[0], sizeof(acc[0]));
  std::memcpy(row + kLanes<T>, &acc[1], sizeof(acc[1]));
}

// relu and leaky_relu (and identity) applied to a whole vector of a tile row before its store:
// left to the in-place loop in store_tile, GCC compiled them to a compare, a conditional move
// and a 4-byte store per element in the AVX2 build; the signal shape's forward op took 2.5-2.9
// ms that way and 1.2-1.3 ms this way (AMD EPYC, 1 thread, old and new builds alternating).
// (Same selects as ActMath, so NaN propagates as there.)
template <Act A>
constexpr bool kActInVector = A == Act::Identity || A == Act::ReLU || A == Act::LeakyReLU;

template <Act A, typename T>
inline VecT<T> act_vector(VecT<T> v, T alpha) {
  if constexpr (A == Act::ReLU) return v < T(0) ? VecT<T>{} : v;
  else if constexpr (A == Act::LeakyReLU) return v > T(0) ? v : v * alpha;
  else return v;
}

// Bias, activation and the store of nb rows x lt positions of a tile. A full row gets the
// bias added to its vectors and is stored; relu / leaky_relu act on the vectors first
// (act_vector), the other activations run over the stored row in place (in L1): copied out to
// an array on the stack first, as before, the signal shape's forward took a third longer.
template <Act A, typename T>
inline void store_tile(const VecT<T> (&acc)[kOB][2], const T* __restrict b,
                       T* __restrict out, int64_t Lo, int64_t o, int64_t nb, int64_t l0,
                       int64_t lt, T alpha) {
  using V = VecT<T>;
#pragma GCC unroll 4  // a compile-time index keeps acc in registers
  for (int ob = 0; ob < kOB; ++ob) {
    if (ob >= nb) break;
    const T bb = b != nullptr ? b[o + ob] : T(0);
    T* orow = out + (o + ob) * Lo + l0;
    if (lt == kLT<T>) {
      V v0 = acc[ob][0] + bb, v1 = acc[ob][1] + bb;
      if constexpr (kActInVector<A>) {
        v0 = act_vector<A, T>(v0, alpha);
        v1 = act_vector<A, T>(v1, alpha);
      }
      std::memcpy(orow, &v0, sizeof(V));
      std::memcpy(orow + kLanes<T>, &v1, sizeof(V));
      if constexpr (!kActInVector<A>)
        for (int j = 0; j < kLT<T>; ++j) orow[j] = ActMath<A>::fwd(orow[j], alpha);
    } else {
      T row[kLT<T>];
      tile_row<T>(acc[ob], row);
      for (int64_t j = 0; j < lt; ++j) orow[j] = ActMath<A>::fwd(row[j] + bb, alpha);
    }
  }
}

// A tile of kOB channels, computed in full and stored for its first lt <= kLT positions (the
// input buffer has the slack that the loads past a row's end need, see phased()).
template <Act A, typename T>
inline void fwd_full_tile(const T* __restrict xph, const T* __restrict w, const T* __restrict b,
                          T* __restrict out, const Conv1dGeom& g, const int64_t* taps, int64_t o,
                          int64_t l0, int64_t lt, T alpha) {
  VecT<T> acc[kOB][2];
  tile_full_vec<T>(xph, w, g, taps, o, l0, acc);
  store_tile<A, T>(acc, b, out, g.Lo, o, kOB, l0, lt, alpha);
}

// Few input taps (C * K <= kRegTaps: the signal case, one channel and K = 7): the
// "input-stationary" tile. The C*K shifted input vectors of a block of kLT positions are
// loaded into registers once and reused by every output channel, whose weights come in as
// broadcast operands; the sums run over (c, k) in the same order as tile_full_vec's. The
// general tile above reloads the input for every tap and 4 channels, and at C * K = 7 its
// per-tile overhead (zeroing, the short tap loop, the epilogue) dominated: the signal shape's
// forward kernel took 1.08-1.31 ms, 0.68-0.89 ms with this tile (standalone harness, 1
// thread, interleaved).
// Needs 32 vector registers, so the AVX-512 build only: with AVX2's 16 the inputs spill, and
// there it ran 0.95-1.10x the general tile (AMD EPYC, interleaved).
constexpr int kRegTaps = 8;
constexpr bool kUseRegTaps = LIGHTDL_CONV1D_VEC == 64;

template <typename T>
struct RegTaps {
  int64_t ck = 0;              // C * K <= kRegTaps
  int64_t off[kRegTaps] = {};  // offset of tap (c, k) = i in a phased batch element
  std::vector<T> w;            // weights as rows of kRegTaps, zero-padded (O rounded to kOB)
};

inline bool reg_taps_fit(const Conv1dGeom& g) {
  return kUseRegTaps && g.C * g.K <= kRegTaps;
}

template <typename T>
RegTaps<T> reg_taps(const T* w, const Conv1dGeom& g, const int64_t* taps) {
  RegTaps<T> r;
  r.ck = g.C * g.K;
  const int64_t R = g.S * g.Lph;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t k = 0; k < g.K; ++k) r.off[c * g.K + k] = c * R + taps[k];
  const int64_t rows = (g.O + kOB - 1) / kOB * kOB;
  r.w.assign(static_cast<size_t>(rows * kRegTaps), T(0));
  for (int64_t o = 0; o < g.O; ++o) std::copy_n(w + o * r.ck, r.ck, r.w.data() + o * kRegTaps);
  return r;
}

// The input vectors of positions [l0, l0 + kLT) for every tap; zeros past C * K (their
// padded weights are zeros too, and 0 * 0 adds nothing to a sum).
template <typename T>
inline void load_reg_taps(const T* __restrict xn, const RegTaps<T>& rt, int64_t l0,
                          VecT<T> (&xv)[kRegTaps][2]) {
  using V = VecT<T>;
#pragma GCC unroll 8
  for (int i = 0; i < kRegTaps; ++i) {
    const T* p = xn + rt.off[i] + l0;
    xv[i][0] = i < rt.ck ? load_as<V>(p) : V{};
    xv[i][1] = i < rt.ck ? load_as<V>(p + kLanes<T>) : V{};
  }
}

// acc[ob] = sum_i w[o + ob, i] xv[i] for kOB channels from o (rows past O are zero weights).
template <typename T>
inline void reg_taps_tile(const VecT<T> (&xv)[kRegTaps][2], const RegTaps<T>& rt,
                          int64_t o, VecT<T> (&acc)[kOB][2]) {
  using V = VecT<T>;
  const T* wo = rt.w.data() + o * kRegTaps;
  for (int ob = 0; ob < kOB; ++ob) acc[ob][0] = acc[ob][1] = V{};
#pragma GCC unroll 8
  for (int i = 0; i < kRegTaps; ++i)
#pragma GCC unroll 4
    for (int ob = 0; ob < kOB; ++ob) {
      const T wv = wo[ob * kRegTaps + i];
      acc[ob][0] += wv * xv[i][0];
      acc[ob][1] += wv * xv[i][1];
    }
}

template <Act A, typename T>
void fwd_reg_taps(const T* __restrict xph, const RegTaps<T>& rt, const T* __restrict b,
                  T* __restrict out, const Conv1dGeom& g, int64_t o0, int64_t o1, T alpha) {
  using V = VecT<T>;
  for (int64_t l0 = 0; l0 < g.Lo; l0 += kLT<T>) {
    const int64_t lt = std::min<int64_t>(kLT<T>, g.Lo - l0);
    V xv[kRegTaps][2];
    load_reg_taps<T>(xph, rt, l0, xv);
    for (int64_t o = o0; o < o1; o += kOB) {
      V acc[kOB][2];
      reg_taps_tile<T>(xv, rt, o, acc);
      store_tile<A, T>(acc, b, out, g.Lo, o, std::min<int64_t>(kOB, o1 - o), l0, lt, alpha);
    }
  }
}

// Output channels [o0, o1) of one batch element with the general tile.
template <Act A, typename T>
void fwd_tiles(const T* __restrict xph, const T* __restrict w, const T* __restrict b,
               T* __restrict out, const Conv1dGeom& g, const int64_t* taps, int64_t o0,
               int64_t o1, T alpha) {
  constexpr int LT = kLT<T>;
  for (int64_t o = o0; o < o1; o += kOB) {
    const int64_t nb = std::min<int64_t>(kOB, o1 - o);
    for (int64_t l0 = 0; l0 < g.Lo; l0 += LT) {
      const int64_t lt = std::min<int64_t>(LT, g.Lo - l0);
      if (nb == kOB) {
        fwd_full_tile<A, T>(xph, w, b, out, g, taps, o, l0, lt, alpha);
        continue;
      }
      T acc[kOB][LT];
      for (int ob = 0; ob < kOB; ++ob)
        for (int j = 0; j < LT; ++j) acc[ob][j] = T(0);
      fwd_tile_part<T>(xph, w, g, taps, o, nb, l0, lt, acc);
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

// Tasks [t0, t1) of (batch element n, block of `block` output channels), task t = n * blocks
// + block index. The tap offsets and the input-stationary tile's padded weights are set up
// once per call, not per task: at af_cnn's first layer (64 x 1 x 60 -> 32, K = 7) that setup
// per task was about half of the op's 0.1 ms.
template <Act A, typename T>
void fwd(const T* __restrict xph, const T* __restrict w, const T* __restrict b,
         T* __restrict out, const Conv1dGeom& g, int64_t t0, int64_t t1, int64_t block,
         T alpha) {
  const std::vector<int64_t> taps = tap_offsets(g);
  const bool use_rt = reg_taps_fit(g);
  const RegTaps<T> rt = use_rt ? reg_taps(w, g, taps.data()) : RegTaps<T>{};
  const int64_t blocks = (g.O + block - 1) / block, R = g.S * g.Lph;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n = t / blocks, o0 = (t % blocks) * block, o1 = std::min(g.O, o0 + block);
    const T* xn = xph + n * g.C * R;
    T* on = out + n * g.O * g.Lo;
    if (use_rt)
      fwd_reg_taps<A, T>(xn, rt, b, on, g, o0, o1, alpha);
    else
      fwd_tiles<A, T>(xn, w, b, on, g, taps.data(), o0, o1, alpha);
  }
}

// conv_rows' tile of kOB channels, stored for its first lt positions (see fwd_full_tile).
template <typename T>
inline void rows_full_tile(const T* __restrict xn, const T* __restrict w, const Conv1dGeom& g,
                           const int64_t* taps, int64_t o, int64_t l0, int64_t lt,
                           T* __restrict z) {
  VecT<T> acc[kOB][2];
  tile_full_vec<T>(xn, w, g, taps, o, l0, acc);
  for (int ob = 0; ob < kOB; ++ob) {
    T* zr = z + ob * g.Lo + l0;
    if (lt == kLT<T>) {  // straight from the vectors
      std::memcpy(zr, &acc[ob][0], sizeof(acc[ob][0]));
      std::memcpy(zr + kLanes<T>, &acc[ob][1], sizeof(acc[ob][1]));
    } else {
      T row[kLT<T>];
      tile_row<T>(acc[ob], row);
      std::copy_n(row, lt, zr);
    }
  }
}

// z[ob, l] = sum_{c,k} w[o + ob, c, k] x[c, l S + k D] for nb <= kOB output channels, into
// rows z (nb, Lo) in L1, with the forward's register tiles.
// rt: the input-stationary tile's data when C * K fits it (null otherwise).
template <typename T>
inline void conv_rows(const T* __restrict xn, const T* __restrict w, const Conv1dGeom& g,
                      const int64_t* taps, const RegTaps<T>* rt, int64_t o, int64_t nb,
                      T* __restrict z) {
  using V = VecT<T>;
  constexpr int LT = kLT<T>;
  for (int64_t l0 = 0; l0 < g.Lo; l0 += LT) {
    const int64_t lt = std::min<int64_t>(LT, g.Lo - l0);
    if (rt != nullptr) {
      V xv[kRegTaps][2], acc[kOB][2];
      load_reg_taps<T>(xn, *rt, l0, xv);
      reg_taps_tile<T>(xv, *rt, o, acc);
#pragma GCC unroll 4
      for (int ob = 0; ob < kOB; ++ob) {
        if (ob >= nb) break;
        T* zr = z + ob * g.Lo + l0;
        if (lt == LT) {
          std::memcpy(zr, &acc[ob][0], sizeof(V));
          std::memcpy(zr + kLanes<T>, &acc[ob][1], sizeof(V));
        } else {
          T row[LT];
          tile_row<T>(acc[ob], row);
          std::copy_n(row, lt, zr);
        }
      }
      continue;
    }
    if (nb == kOB) {
      rows_full_tile<T>(xn, w, g, taps, o, l0, lt, z);
      continue;
    }
    T acc[kOB][LT];
    for (int ob = 0; ob < kOB; ++ob)
      for (int j = 0; j < LT; ++j) acc[ob][j] = T(0);
    fwd_tile_part<T>(xn, w, g, taps, o, nb, l0, lt, acc);
    for (int64_t ob = 0; ob < nb; ++ob)
      for (int64_t j = 0; j < lt; ++j) z[ob * g.Lo + l0 + j] = acc[ob][j];
  }
}

// The weight and bias gradients are sums over the batch and the positions. Their partial
// sums stay in vectors (one per weight, see VecT) across every row of a batch chunk; the
// lanes are added once, at the end of the chunk (lane_sum). (Added per row instead, the lane
// sums cost more than the products at short rows: L = 60 took 2x the time of oneDNN's
// weight gradient.) Every sum runs in a fixed order that depends only on the shapes.
template <typename T>
inline T lane_sum(const VecT<T>& v) {
  T t = T(0);
  for (int q = 0; q < kLanes<T>; ++q) t += v[q];
  return t;
}

// Lanes [0, rem) set: the last, partial vector of a row. Its other lanes read whatever lies
// past the row (the next row, or the buffers' slack) and are dropped by a select, not by a
// multiplication, so a non-finite value there cannot leak in.
template <typename T>
using MaskI = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
template <typename T>
using MaskT = typename VecN<MaskI<T>, LIGHTDL_CONV1D_VEC>::type;
template <typename T>
inline MaskT<T> tail_mask(int64_t rem) {
  MaskT<T> idx;
  for (int q = 0; q < kLanes<T>; ++q) idx[q] = q;
  return idx < static_cast<MaskI<T>>(rem);
}

// s_i += a[l] * b_i[l] lane-wise over l < n, for NB rows b_i (NB <= 8): a is loaded once for
// NB independent accumulator chains, which keeps the FMA units busy (a single chain waits on
// the FMA latency: one tap per pass took the signal shape's whole backward from 3.3 to 4.0 ms).
template <int NB, typename T>
inline void dotn_acc(const T* __restrict a, const T* const* b, int64_t n,
                     const MaskT<T>& tail, VecT<T>* s) {
  using V = VecT<T>;
  constexpr int VL = kLanes<T>;
  V acc[NB];
  for (int i = 0; i < NB; ++i) acc[i] = s[i];
  int64_t l = 0;
  for (; l + VL <= n; l += VL) {
    const V av = load_as<V>(a + l);
    for (int i = 0; i < NB; ++i) acc[i] += av * load_as<V>(b[i] + l);
  }
  if (l < n) {
    const V av = load_as<V>(a + l);
    for (int i = 0; i < NB; ++i) acc[i] += tail ? av * load_as<V>(b[i] + l) : V{};
  }
  for (int i = 0; i < NB; ++i) s[i] = acc[i];
}

// s_k += a . b_k for the nb <= 8 rows b_k, as dotn_acc with nb fixed at compile time.
template <typename T>
inline void dot_rows_acc(const T* __restrict a, const T* const* b, int nb, int64_t n,
                         const MaskT<T>& tail, VecT<T>* s) {
  switch (nb) {
    case 8: dotn_acc<8, T>(a, b, n, tail, s); break;
    case 7: dotn_acc<7, T>(a, b, n, tail, s); break;
    case 6: dotn_acc<6, T>(a, b, n, tail, s); break;
    case 5: dotn_acc<5, T>(a, b, n, tail, s); break;
    case 4: dotn_acc<4, T>(a, b, n, tail, s); break;
    case 3: dotn_acc<3, T>(a, b, n, tail, s); break;
    case 2: dotn_acc<2, T>(a, b, n, tail, s); break;
    default: dotn_acc<1, T>(a, b, n, tail, s); break;
  }
}

// s += a[l] lane-wise over l < n, in two chains (the add latency half hidden).
template <typename T>
inline void sum_acc(const T* __restrict a, int64_t n, const MaskT<T>& tail,
                    VecT<T>& s) {
  using V = VecT<T>;
  constexpr int VL = kLanes<T>;
  V s0{}, s1{};
  int64_t l = 0;
  for (; l + 2 * VL <= n; l += 2 * VL) {
    s0 += load_as<V>(a + l);
    s1 += load_as<V>(a + l + VL);
  }
  if (l + VL <= n) {
    s0 += load_as<V>(a + l);
    l += VL;
  }
  if (l < n) s1 += tail ? load_as<V>(a + l) : V{};
  s += s0 + s1;
}

// gxph[c, r Lph + m] += sum_{ob < nb} sum_{k in phase r} w[o0 + ob, c, k] gz_ob[m - q_k]
// (tap k = phase r, offset q_k; see conv1d_tap): grad_input as a correlation over the
// positions of the (phased, padded) input, accumulated in registers over the block's channels
// and taps, one load and store of gxph per tile and block.
template <typename T>
void grad_input_block(const T* __restrict gzp, int64_t Lz, int64_t M, const T* __restrict w,
                      const Conv1dGeom& g, const int64_t* phase, const int64_t* shift,
                      int64_t o0, int64_t nb, T* __restrict gxph) {
  using V = VecT<T>;
  constexpr int VL = kLanes<T>;
  constexpr int LT = 4 * VL;
  const int64_t CK = g.C * g.K, R = g.S * g.Lph;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t r = 0; r < g.S; ++r) {
      T* dst = gxph + c * R + r * g.Lph;
      for (int64_t m0 = 0; m0 < g.Lph; m0 += LT) {
        const int64_t lt = std::min<int64_t>(LT, g.Lph - m0);
        // Four vector accumulators (in registers, see VecT); a partial last tile goes
        // through a zero-padded copy.
        T part[LT];
        T* io = dst + m0;
        if (lt < LT) {
          for (int j = 0; j < LT; ++j) part[j] = j < lt ? io[j] : T(0);
          io = part;
        }
        V a0 = load_as<V>(io), a1 = load_as<V>(io + VL), a2 = load_as<V>(io + 2 * VL),
          a3 = load_as<V>(io + 3 * VL);
        for (int64_t ob = 0; ob < nb; ++ob)
          for (int64_t k = 0; k < g.K; ++k) {
            if (phase[k] != r) continue;  // another phase
            const T* src = gzp + ob * Lz + M + m0 - shift[k];
            const T wv = w[(o0 + ob) * CK + c * g.K + k];
            a0 += wv * load_as<V>(src);
            a1 += wv * load_as<V>(src + VL);
            a2 += wv * load_as<V>(src + 2 * VL);
            a3 += wv * load_as<V>(src + 3 * VL);
          }
        std::memcpy(io, &a0, sizeof(V));
        std::memcpy(io + VL, &a1, sizeof(V));
        std::memcpy(io + 2 * VL, &a2, sizeof(V));
        std::memcpy(io + 3 * VL, &a3, sizeof(V));
        if (lt < LT) std::copy_n(part, lt, dst + m0);
      }
    }
}

template <Act A, typename T>
void bwd(const T* __restrict grad, const T* __restrict xph, const T* __restrict w,
         const T* __restrict b, const T* __restrict saved, T* __restrict gx,
         T* __restrict gw_acc, T* __restrict gb_acc, T* __restrict gxph, T* __restrict zrow,
         const Conv1dGeom& g, int64_t n0, int64_t n1,
         T alpha) {
  const int64_t CK = g.C * g.K, R = g.S * g.Lph;
  const std::vector<int64_t> taps = tap_offsets(g);
  // act' from the pre-activation, recomputed here, or (the *FromOutput acts) from the saved
  // output (N, O, Lo).
  constexpr bool kRecompute = A != Act::Identity && !kGradFromOutput<A>;
  const bool use_rt = kRecompute && reg_taps_fit(g);
  const RegTaps<T> rt = use_rt ? reg_taps(w, g, taps.data()) : RegTaps<T>{};
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
  using V = VecT<T>;
  AlignedVector<V> gwv(gw_acc != nullptr ? g.O * CK : 0, V{}), gbv(gb_acc != nullptr ? g.O : 0, V{});
  const MaskT<T> tail = tail_mask<T>(g.Lo % kLanes<T>);
  for (int64_t n = n0; n < n1; ++n) {
    const T* xn = xph + n * g.C * R;
    if (gx != nullptr) std::memset(gxph, 0, sizeof(T) * g.C * R);
    for (int64_t o0 = 0; o0 < g.O; o0 += kOB) {
      const int64_t nb = std::min<int64_t>(kOB, g.O - o0);
      if (kRecompute) conv_rows(xn, w, g, taps.data(), use_rt ? &rt : nullptr, o0, nb, zrow);
      for (int64_t ob = 0; ob < nb; ++ob) {
        const int64_t o = o0 + ob;
        const T* gr = grad + (n * g.O + o) * g.Lo;
        T* gz = gzp.data() + ob * Lz + M;  // this row's gz, zero margins either side
        if constexpr (kGradFromOutput<A>) {
          const T* y = saved + (n * g.O + o) * g.Lo;
          for (int64_t l = 0; l < g.Lo; ++l) gz[l] = gr[l] * ActMath<A>::grad(y[l], alpha);
        } else if constexpr (kRecompute) {  // act' applied once, to a row still in L1
          const T* z = zrow + ob * g.Lo;
          const T bo = b != nullptr ? b[o] : T(0);
          for (int64_t l = 0; l < g.Lo; ++l) gz[l] = gr[l] * ActMath<A>::grad(z[l] + bo, alpha);
        } else {
          std::memcpy(gz, gr, sizeof(T) * g.Lo);
        }
        if (gb_acc != nullptr) sum_acc<T>(gz, g.Lo, tail, gbv[o]);
        if (gw_acc != nullptr)
          for (int64_t c = 0; c < g.C; ++c) {
            const T* xc = xn + c * R;
            V* acc = gwv.data() + o * CK + c * g.K;
            for (int64_t k = 0; k < g.K; k += 8) {
              const int nk = static_cast<int>(std::min<int64_t>(8, g.K - k));
              const T* rows[8];
              for (int i = 0; i < nk; ++i) rows[i] = xc + taps[k + i];
              dot_rows_acc<T>(gz, rows, nk, g.Lo, tail, acc + k);
            }
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
  for (size_t i = 0; i < gwv.size(); ++i) gw_acc[i] += lane_sum<T>(gwv[i]);
  for (size_t i = 0; i < gbv.size(); ++i) gb_acc[i] += lane_sum<T>(gbv[i]);
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
  // The backward from the saved output (no forward: the forward is the plain act's).
  t.bwd[static_cast<int>(Act::SigmoidFromOutput)] = &bwd<Act::SigmoidFromOutput, T>;
  t.bwd[static_cast<int>(Act::TanhFromOutput)] = &bwd<Act::TanhFromOutput, T>;
  t.bwd[static_cast<int>(Act::ReLUFromOutput)] = &bwd<Act::ReLUFromOutput, T>;
  t.bwd[static_cast<int>(Act::LeakyReLUFromOutput)] = &bwd<Act::LeakyReLUFromOutput, T>;
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

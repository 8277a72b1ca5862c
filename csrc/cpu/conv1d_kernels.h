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

// What the register tile reads, set up once per call: the offset of every input tap i = c K + k
// in a phased batch element, and the weights packed per block of kOB output channels as
// [i][ob], zero rows past O. The inner loop then walks three pointers (input, offsets,
// weights); with the tap offsets per k and four weight rows per c it kept five addresses on
// the stack and reloaded them for every tap, and the c32 forward ran at 30-38 GFLOP/s against
// 46-73 for the same tile in a standalone harness (AMD EPYC, AVX2, 1 thread).
template <typename T>
struct TilePlan {
  std::vector<int64_t> off;  // CK
  std::vector<T> w;          // ceil(O / kOB) * CK * kOB
};

// (pack_weights false: the offsets only, for a backward that reads act' from the output.)
template <typename T>
TilePlan<T> tile_plan(const T* w, const Conv1dGeom& g, const int64_t* taps,
                      bool pack_weights = true) {
  const int64_t CK = g.C * g.K, R = g.S * g.Lph, blocks = (g.O + kOB - 1) / kOB;
  TilePlan<T> p;
  p.off.resize(static_cast<size_t>(CK));
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t k = 0; k < g.K; ++k) p.off[c * g.K + k] = c * R + taps[k];
  if (!pack_weights) return p;
  p.w.assign(static_cast<size_t>(blocks * CK * kOB), T(0));
  for (int64_t o = 0; o < g.O; ++o)
    for (int64_t i = 0; i < CK; ++i) p.w[((o / kOB) * CK + i) * kOB + o % kOB] = w[o * CK + i];
  return p;
}

// Full tiles and the reductions below keep their accumulators in GCC vectors (VecT, see
// vec64.h), which the compiler keeps in registers.

// acc[nb][ob][j] = sum_{c,k} w[o + nb kOB + ob, c, k] x[c, (l0 + j) S + k D]: NB tiles of kOB
// channels from o (a multiple of kOB; channels past O have zero weights and are not stored)
// by NV vectors of positions (NV = 2: kLT). NB = 2 (AVX-512, see kFwdPairs): each input
// vector loaded feeds 8 channels, 16 accumulators of its 32 registers; NB = 4 with NV = 1 for
// rows of at most one vector (kShortRows); all NB blocks must lie inside the packed weights.
// The forward and the backward's recomputation both use this function and every channel's
// sum runs in the same order for any NB and NV, so their pre-activations agree bit for bit.
template <int NB, int NV, typename T>
inline void tile_vec(const T* __restrict xn, const TilePlan<T>& tp, const Conv1dGeom& g,
                     int64_t o, int64_t l0, VecT<T> (&acc)[NB][kOB][NV]) {
  using V = VecT<T>;
  const int64_t CK = g.C * g.K;
  const T* __restrict wo = tp.w.data() + (o / kOB) * CK * kOB;
  const int64_t* __restrict off = tp.off.data();
  const T* xl = xn + l0;
#pragma GCC unroll 4
  for (int nb = 0; nb < NB; ++nb)
#pragma GCC unroll 4
    for (int ob = 0; ob < kOB; ++ob)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[nb][ob][v] = V{};
  for (int64_t i = 0; i < CK; ++i) {
    const T* xr = xl + off[i];
    V x[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) x[v] = load_as<V>(xr + v * kLanes<T>);
#pragma GCC unroll 4
    for (int nb = 0; nb < NB; ++nb) {
      const T* wi = wo + (nb * CK + i) * kOB;
#pragma GCC unroll 4
      for (int ob = 0; ob < kOB; ++ob) {
        const T wv = wi[ob];
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[nb][ob][v] += wv * x[v];
      }
    }
  }
}

// Row ob of a full tile as a plain array, which the epilogue loops vectorise over (element
// access of the vector variables would run them one lane at a time).
template <typename T, int NV = 2>
inline void tile_row(const VecT<T> (&acc)[NV], T (&row)[NV * kLanes<T>]) {
  for (int v = 0; v < NV; ++v) std::memcpy(row + v * kLanes<T>, &acc[v], sizeof(acc[v]));
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
template <Act A, typename T, int NV = 2>
inline void store_tile(const VecT<T> (&acc)[kOB][NV], const T* __restrict b,
                       T* __restrict out, int64_t Lo, int64_t o, int64_t nb, int64_t l0,
                       int64_t lt, T alpha) {
  using V = VecT<T>;
  constexpr int LT = NV * kLanes<T>;
#pragma GCC unroll 4  // a compile-time index keeps acc in registers
  for (int ob = 0; ob < kOB; ++ob) {
    if (ob >= nb) break;
    const T bb = b != nullptr ? b[o + ob] : T(0);
    T* orow = out + (o + ob) * Lo + l0;
    if (lt == LT) {
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        V y = acc[ob][v] + bb;
        if constexpr (kActInVector<A>) y = act_vector<A, T>(y, alpha);
        std::memcpy(orow + v * kLanes<T>, &y, sizeof(V));
      }
      if constexpr (!kActInVector<A>)
        for (int j = 0; j < LT; ++j) orow[j] = ActMath<A>::fwd(orow[j], alpha);
    } else {
      T row[LT];
      tile_row<T, NV>(acc[ob], row);
      for (int64_t j = 0; j < lt; ++j) orow[j] = ActMath<A>::fwd(row[j] + bb, alpha);
    }
  }
}

// A tile of kOB channels, computed in full and stored for its first nb <= kOB channels and lt
// <= kLT positions (the input buffer has the slack that the loads past a row's end need, see
// phased()).
template <Act A, typename T>
inline void fwd_full_tile(const T* __restrict xph, const TilePlan<T>& tp, const T* __restrict b,
                          T* __restrict out, const Conv1dGeom& g, int64_t o, int64_t nb,
                          int64_t l0, int64_t lt, T alpha) {
  VecT<T> acc[1][kOB][2];
  tile_vec<1, 2, T>(xph, tp, g, o, l0, acc);
  store_tile<A, T>(acc[0], b, out, g.Lo, o, nb, l0, lt, alpha);
}

// Few input taps (C * K <= kRegTaps: the signal case, one channel and K = 7): the
// "input-stationary" tile. The C*K shifted input vectors of a block of kLT positions are
// loaded into registers once and reused by every output channel, whose weights come in as
// broadcast operands; the sums run over (c, k) in the same order as tile_vec's. The
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

// AVX-512: channels in pairs of tiles (tile_vec<2>) while at least kOB + 1 remain. The
// forward kernel took 10-17% less time than with single tiles (c16-s2, c4, c8, c32 forced
// direct, af-c32, 32 x 16 x 512 -> 64 K 3; relu, AMD EPYC Zen 5, 1 thread, interleaved).
// kShortRows: rows of at most one vector (af_cnn's third convolution, L_out 15) in four
// one-vector tiles at once, 16 accumulators as in the pairs: a two-vector tile computed
// twice the positions needed there. The forward op took 30-38% less time (N = 64, L_out
// 8-16, C_in 16-128, C_out 36-128, K 3-5, forced direct, same host and method, 1 and 2
// threads).
constexpr bool kFwdPairs = LIGHTDL_CONV1D_VEC == 64;

// Output channels [o0, o1) of one batch element with the general tile.
template <Act A, typename T>
void fwd_tiles(const T* __restrict xph, const TilePlan<T>& tp, const T* __restrict b,
               T* __restrict out, const Conv1dGeom& g, int64_t o0, int64_t o1, T alpha) {
  constexpr int LT = kLT<T>;
  int64_t o = o0;
  if constexpr (kFwdPairs) {
    if (g.Lo <= kLanes<T>) {  // kShortRows
      for (; o + 3 * kOB < o1; o += 4 * kOB) {
        VecT<T> acc[4][kOB][1];
        tile_vec<4, 1, T>(xph, tp, g, o, 0, acc);
#pragma GCC unroll 4
        for (int nb = 0; nb < 4; ++nb)
          store_tile<A, T, 1>(acc[nb], b, out, g.Lo, o + nb * kOB,
                              std::min<int64_t>(kOB, o1 - o - nb * kOB), 0, g.Lo, alpha);
      }
      for (; o < o1; o += kOB) {  // the last 1-12 channels, one one-vector tile at a time
        VecT<T> acc[1][kOB][1];
        tile_vec<1, 1, T>(xph, tp, g, o, 0, acc);
        store_tile<A, T, 1>(acc[0], b, out, g.Lo, o, std::min<int64_t>(kOB, o1 - o), 0, g.Lo,
                            alpha);
      }
    }
    for (; o + kOB < o1; o += 2 * kOB) {
      const int64_t nb2 = std::min<int64_t>(kOB, o1 - o - kOB);
      for (int64_t l0 = 0; l0 < g.Lo; l0 += LT) {
        const int64_t lt = std::min<int64_t>(LT, g.Lo - l0);
        VecT<T> acc[2][kOB][2];
        tile_vec<2, 2, T>(xph, tp, g, o, l0, acc);
        store_tile<A, T>(acc[0], b, out, g.Lo, o, kOB, l0, lt, alpha);
        store_tile<A, T>(acc[1], b, out, g.Lo, o + kOB, nb2, l0, lt, alpha);
      }
    }
  }
  for (; o < o1; o += kOB) {
    const int64_t nb = std::min<int64_t>(kOB, o1 - o);
    for (int64_t l0 = 0; l0 < g.Lo; l0 += LT) {
      const int64_t lt = std::min<int64_t>(LT, g.Lo - l0);
      fwd_full_tile<A, T>(xph, tp, b, out, g, o, nb, l0, lt, alpha);
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
  const TilePlan<T> tp = use_rt ? TilePlan<T>{} : tile_plan(w, g, taps.data());
  const int64_t blocks = (g.O + block - 1) / block, R = g.S * g.Lph;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n = t / blocks, o0 = (t % blocks) * block, o1 = std::min(g.O, o0 + block);
    const T* xn = xph + n * g.C * R;
    T* on = out + n * g.O * g.Lo;
    if (use_rt)
      fwd_reg_taps<A, T>(xn, rt, b, on, g, o0, o1, alpha);
    else
      fwd_tiles<A, T>(xn, tp, b, on, g, o0, o1, alpha);
  }
}

// z[ob, l] = sum_{c,k} w[o + ob, c, k] x[c, l S + k D] for nb <= kOB output channels, into
// rows z (nb, Lo) in L1, with the forward's register tiles.
// rt: the input-stationary tile's data when C * K fits it (null otherwise; tp then).
template <typename T>
inline void conv_rows(const T* __restrict xn, const TilePlan<T>& tp, const RegTaps<T>* rt,
                      const Conv1dGeom& g, int64_t o, int64_t nb, T* __restrict z) {
  using V = VecT<T>;
  constexpr int LT = kLT<T>;
  for (int64_t l0 = 0; l0 < g.Lo; l0 += LT) {
    const int64_t lt = std::min<int64_t>(LT, g.Lo - l0);
    V tile[1][kOB][2];
    V (&acc)[kOB][2] = tile[0];
    if (rt != nullptr) {
      V xv[kRegTaps][2];
      load_reg_taps<T>(xn, *rt, l0, xv);
      reg_taps_tile<T>(xv, *rt, o, acc);
    } else {
      tile_vec<1, 2, T>(xn, tp, g, o, l0, tile);
    }
#pragma GCC unroll 4
    for (int ob = 0; ob < kOB; ++ob) {
      if (ob >= nb) break;
      T* zr = z + ob * g.Lo + l0;
      if (lt == LT) {  // straight from the vectors
        std::memcpy(zr, &acc[ob][0], sizeof(V));
        std::memcpy(zr + kLanes<T>, &acc[ob][1], sizeof(V));
      } else {
        T row[LT];
        tile_row<T>(acc[ob], row);
        std::copy_n(row, lt, zr);
      }
    }
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

// s[ob * ld + ib] += a_ob[l] * b_ib[l] lane-wise over l < n: an OB x IB register tile of the
// weight gradient (OB gz rows against IB shifted input rows), OB + IB loads for OB * IB
// FMAs. The earlier form, one gz row against up to 8 taps of one input channel, loaded 9
// vectors for 8 FMAs and ran a single latency-bound chain for K = 9's ninth tap. Each input
// vector is loaded next to its FMAs, so only one of them is live at a time.
template <int OB, int IB, typename T>
inline void gw_tile(const T* const* a, const T* const* b, int64_t n, const MaskT<T>& tail,
                    VecT<T>* s, int64_t ld) {
  using V = VecT<T>;
  constexpr int VL = kLanes<T>;
  V acc[OB][IB];
#pragma GCC unroll 4
  for (int ob = 0; ob < OB; ++ob)
#pragma GCC unroll 4
    for (int ib = 0; ib < IB; ++ib) acc[ob][ib] = s[ob * ld + ib];
  int64_t l = 0;
  for (; l + VL <= n; l += VL) {
    V av[OB];
#pragma GCC unroll 8
    for (int ob = 0; ob < OB; ++ob) av[ob] = load_as<V>(a[ob] + l);
#pragma GCC unroll 8
    for (int ib = 0; ib < IB; ++ib) {
      const V bv = load_as<V>(b[ib] + l);
#pragma GCC unroll 8
      for (int ob = 0; ob < OB; ++ob) acc[ob][ib] += av[ob] * bv;
    }
  }
  if (l < n) {
    // Both operands' lanes past the row masked: they may hold a non-finite value (the next
    // row's, when gz's margin is shorter than a vector), and 0 * inf is NaN.
    V av[OB], bv[IB];
    for (int ob = 0; ob < OB; ++ob) av[ob] = tail ? load_as<V>(a[ob] + l) : V{};
    for (int ib = 0; ib < IB; ++ib) bv[ib] = tail ? load_as<V>(b[ib] + l) : V{};
    for (int ob = 0; ob < OB; ++ob)
      for (int ib = 0; ib < IB; ++ib) acc[ob][ib] += av[ob] * bv[ib];
  }
#pragma GCC unroll 4
  for (int ob = 0; ob < OB; ++ob)
#pragma GCC unroll 4
    for (int ib = 0; ib < IB; ++ib) s[ob * ld + ib] = acc[ob][ib];
}

// AVX-512 (32 registers): 4 x 4, 16 accumulators. Measured on the backward kernel (relu, all
// gradients, AMD EPYC Zen 5, 1 thread, interleaved in one process): at 4 x 3 the c16-s2
// weight gradient took 2.8 ms against 1.6-1.7 ms at 4 x 4, 4 x 5 and 4 x 6 (the signal, c4
// and c8 shapes 1.2-1.8x as long as well); 4 x 6 with every operand loaded ahead (34 live
// vectors) spilled and took 4.6 ms. The AVX2 build keeps 4 x 3: 4 x 2 took 1.1-1.5x longer.
#if LIGHTDL_CONV1D_VEC == 64
constexpr int kGwOB = 4, kGwIB = 4;
#else
constexpr int kGwOB = 4, kGwIB = 3;  // 12 accumulators + 7 operands: AVX2's 16 registers
#endif

template <int OB, typename T>
inline void gw_tile_ib(int ib, const T* const* a, const T* const* b, int64_t n,
                       const MaskT<T>& tail, VecT<T>* s, int64_t ld) {
  switch (ib) {
#if LIGHTDL_CONV1D_VEC == 64
    case 4: gw_tile<OB, 4, T>(a, b, n, tail, s, ld); break;
#endif
    case 3: gw_tile<OB, 3, T>(a, b, n, tail, s, ld); break;
    case 2: gw_tile<OB, 2, T>(a, b, n, tail, s, ld); break;
    default: gw_tile<OB, 1, T>(a, b, n, tail, s, ld); break;
  }
}

// gwv[o, i] += gz_o . x_i over the positions, for the no output channels whose gz rows are
// given and every input tap i = c * K + k (x_i: input row c read at tap k's offset), in tiles
// of kGwOB x kGwIB.
template <typename T>
void grad_weight_rows(const T* gz, int64_t Lz, int64_t no, const T* __restrict xn,
                      const int64_t* off, const Conv1dGeom& g, const MaskT<T>& tail,
                      VecT<T>* gwv) {
  const int64_t CK = g.C * g.K;
  for (int64_t o0 = 0; o0 < no; o0 += kGwOB) {
    const int ob = static_cast<int>(std::min<int64_t>(kGwOB, no - o0));
    const T* a[kGwOB];
    for (int j = 0; j < ob; ++j) a[j] = gz + (o0 + j) * Lz;
    for (int64_t i0 = 0; i0 < CK; i0 += kGwIB) {
      const int ib = static_cast<int>(std::min<int64_t>(kGwIB, CK - i0));
      const T* b[kGwIB];
      for (int j = 0; j < ib; ++j) b[j] = xn + off[i0 + j];
      VecT<T>* s = gwv + o0 * CK + i0;
      switch (ob) {
        case 4: gw_tile_ib<4, T>(ib, a, b, g.Lo, tail, s, CK); break;
        case 3: gw_tile_ib<3, T>(ib, a, b, g.Lo, tail, s, CK); break;
        case 2: gw_tile_ib<2, T>(ib, a, b, g.Lo, tail, s, CK); break;
        default: gw_tile_ib<1, T>(ib, a, b, g.Lo, tail, s, CK); break;
      }
    }
  }
}

// The weight gradient in GEMM form (AVX-512 build): gw[o, i] = sum_l gz[o, l] x_i[l] with the
// output channels along the vector lanes (gz transposed to (Lo, Op) rows) and the input taps
// x_i[l] as broadcast operands, the forward's tile with the roles of positions and channels
// swapped. Its partial sums are plain sums, O * CK numbers, where the form above keeps a
// vector per weight (O * CK * 16 floats: beyond L2 once O * CK exceeds ~16K, and paid per
// batch element when the rows are short).
constexpr bool kGwGemm = LIGHTDL_CONV1D_VEC == 64;
constexpr int kGgOV = 2, kGgNI = 8;  // 2 vectors of channels x 8 taps: 16 accumulators
// Used from 64 output channels (and with all of them in one group, see bwd). Weight-gradient
// kernel time, GEMM form / the form above (relu, AMD EPYC Zen 5, 1 thread, interleaved):
// O = 64-128: c32 0.92, c64 0.75, c128-dil2 0.55, af-c32 0.28, af-c64 0.25; O = 16-32, where
// one tile spans all channels or more: c16-s2 1.54, signal 1.67, c4 1.41, c8 1.17, 64 x 1 x 60
// -> 32 1.24. About a sixth of its time is the transpose of gz.
constexpr int64_t kGwGemmMinOut = 64;

// acc[i0 + j][o0 .. o0 + OV VL) += sum_l gzt[l][o0 ..] * x_{i0 + j}[l]; `xb`: NI tap rows.
template <int OV, int NI, typename T>
inline void gw_gemm_tile(const T* __restrict gzt, int64_t ldt, int64_t Lo, const T* const* xb,
                         T* __restrict acc, int64_t lda) {
  using V = VecT<T>;
  constexpr int VL = kLanes<T>;
  V s[OV][NI];
#pragma GCC unroll 8
  for (int j = 0; j < NI; ++j)
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) s[v][j] = load_as<V>(acc + j * lda + v * VL);
  const T* x[NI];
#pragma GCC unroll 8
  for (int j = 0; j < NI; ++j) x[j] = xb[j];
  for (int64_t l = 0; l < Lo; ++l) {
    const T* a = gzt + l * ldt;
    V av[OV];
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) av[v] = load_as<V>(a + v * VL);
#pragma GCC unroll 8
    for (int j = 0; j < NI; ++j) {
      const T b = x[j][l];
#pragma GCC unroll 4
      for (int v = 0; v < OV; ++v) s[v][j] += av[v] * b;
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < NI; ++j)
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) store_as(acc + j * lda + v * VL, s[v][j]);
}

// Op = O rounded up to kGgOV vectors, CKp = C K rounded up to kGgNI (the extra taps read a
// row of zeros, the extra channels are zero columns of gzt; both land in accumulators that
// are dropped).
template <typename T>
struct GwGemm {
  int64_t Op = 0, CKp = 0;
  std::vector<int64_t> off;  // CKp tap offsets in a phased batch element; -1: the zero row
  AlignedVector<T> gzt;      // (Lo, Op)
  AlignedVector<T> acc;      // (CKp, Op)
  std::vector<T> zeros;      // Lo
};

template <typename T>
GwGemm<T> gw_gemm_plan(const Conv1dGeom& g, const int64_t* off) {
  GwGemm<T> p;
  const int64_t CK = g.C * g.K, ow = kGgOV * kLanes<T>;
  p.Op = (g.O + ow - 1) / ow * ow;
  p.CKp = (CK + kGgNI - 1) / kGgNI * kGgNI;
  p.off.assign(static_cast<size_t>(p.CKp), -1);
  std::copy_n(off, CK, p.off.data());
  p.gzt.assign(static_cast<size_t>(g.Lo * p.Op), T(0));
  p.acc.assign(static_cast<size_t>(p.CKp * p.Op), T(0));
  p.zeros.assign(static_cast<size_t>(g.Lo), T(0));
  return p;
}

// One batch element: gz rows (O of them, Lz apart) transposed into gzt, then every tile.
template <typename T>
void grad_weight_gemm(const T* gz, int64_t Lz, const T* __restrict xn, const Conv1dGeom& g,
                      GwGemm<T>& p) {
  T* __restrict t = p.gzt.data();
  constexpr int64_t kB = 16;  // positions per block of the transpose (its writes stay in L1)
  for (int64_t l0 = 0; l0 < g.Lo; l0 += kB) {
    const int64_t l1 = std::min(g.Lo, l0 + kB);
    for (int64_t o = 0; o < g.O; ++o) {
      const T* row = gz + o * Lz;
      for (int64_t l = l0; l < l1; ++l) t[l * p.Op + o] = row[l];
    }
  }
  constexpr int64_t ow = kGgOV * kLanes<T>;
  for (int64_t o0 = 0; o0 < p.Op; o0 += ow)
    for (int64_t i0 = 0; i0 < p.CKp; i0 += kGgNI) {
      const T* xb[kGgNI];
      for (int j = 0; j < kGgNI; ++j) {
        const int64_t o = p.off[i0 + j];
        xb[j] = o >= 0 ? xn + o : p.zeros.data();
      }
      gw_gemm_tile<kGgOV, kGgNI, T>(t + o0, p.Op, g.Lo, xb, p.acc.data() + i0 * p.Op + o0, p.Op);
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

// gz[l] = gr[l] * act'(v[l] + bias) over a row (v: the pre-activation without its bias, or, for
// the *FromOutput acts, the output with bias 0). relu's and leaky_relu's derivatives as vector
// selects: as a plain loop GCC compiled them to a compare and a branch per element, which
// mispredicts on half of them: 2.9 of the c16-s2 backward kernel's 11 ms (harness, 1 thread).
template <Act A>
constexpr bool kGradSelect = A == Act::ReLU || A == Act::LeakyReLU ||
                             A == Act::ReLUFromOutput || A == Act::LeakyReLUFromOutput;

template <Act A, typename T>
inline void grad_row(const T* __restrict gr, const T* __restrict v, T bias, int64_t n, T alpha,
                     T* __restrict gz) {
  int64_t l = 0;
  if constexpr (kGradSelect<A>) {
    using V = VecT<T>;
    constexpr int VL = kLanes<T>;
    constexpr bool kLeaky = A == Act::LeakyReLU || A == Act::LeakyReLUFromOutput;
    const V one = V{} + T(1), low = V{} + (kLeaky ? alpha : T(0));
    for (; l + VL <= n; l += VL) {  // same compare as ActMath's: NaN takes the low side
      const V d = load_as<V>(v + l) + bias > T(0) ? one : low;
      store_as(gz + l, load_as<V>(gr + l) * d);
    }
  }
  for (; l < n; ++l) gz[l] = gr[l] * ActMath<A>::grad(v[l] + bias, alpha);
}

// What grad_input_tiles needs, set up once per call: the weights repacked per block of kGxCB
// input channels as [o][k][cb] (the broadcasts of one (o, k) step are adjacent), and the taps
// of each phase.
constexpr int kGxCB = 4;  // input channels per tile: 4 x 2 vectors, as the forward's tile
// The backward's gz rows per thread: 4 MiB (within L2 on the shapes measured; a long series
// takes its output channels in groups instead).
constexpr int64_t kGzBytes = int64_t{4} << 20;

template <typename T>
struct GxPlan {
  std::vector<T> wt;                              // block c0: wt[c0 * O * K + (o K + k) cb + j]
  std::vector<std::vector<int64_t>> taps, shift;  // per phase r: the taps k and their shifts
};

template <typename T>
GxPlan<T> gx_plan(const T* w, const Conv1dGeom& g) {
  GxPlan<T> p;
  const int64_t CK = g.C * g.K;
  p.wt.resize(static_cast<size_t>(g.O * CK));
  for (int64_t c0 = 0; c0 < g.C; c0 += kGxCB) {
    const int64_t cb = std::min<int64_t>(kGxCB, g.C - c0);
    T* dst = p.wt.data() + c0 * g.O * g.K;
    for (int64_t o = 0; o < g.O; ++o)
      for (int64_t k = 0; k < g.K; ++k)
        for (int64_t j = 0; j < cb; ++j) dst[(o * g.K + k) * cb + j] = w[o * CK + (c0 + j) * g.K + k];
  }
  p.taps.resize(static_cast<size_t>(g.S));
  p.shift.resize(static_cast<size_t>(g.S));
  for (int64_t k = 0; k < g.K; ++k) {  // tap k reads phase (k D) % S at offset (k D) / S
    p.taps[(k * g.D) % g.S].push_back(k);
    p.shift[(k * g.D) % g.S].push_back((k * g.D) / g.S);
  }
  return p;
}

// gxph[c0 + j, r Lph + m] = sum_o sum_{k in phase r} w[o, c0 + j, k] gz_o[m - shift_k] for CB
// input channels: grad_input as a correlation over the (phased, padded) input positions, in
// register tiles of CB channels x NV vectors (the forward's tile with the channel roles
// swapped: NV loads and CB broadcasts per CB * NV FMAs). CB * NV = 8 independent sums (16 with
// AVX-512, kGxNV), enough to cover the FMA latency: with fewer channels the tile runs longer
// along the positions (a one-channel tile of 2 vectors took the signal shape's backward from
// 3.1 to 3.6-4.6 ms).
// The no output channels whose gz rows and (pre-offset) weights are given are summed here;
// `add`: onto what gxph holds (a later group of output channels), else overwriting it.
template <int CB, int NV, typename T>
void grad_input_tiles(const T* gz, int64_t Lz, int64_t no, const T* __restrict wt,
                      const GxPlan<T>& p, const Conv1dGeom& g, int64_t c0, bool add,
                      T* __restrict gxph) {
  using V = VecT<T>;
  constexpr int VL = kLanes<T>;
  constexpr int LT = NV * VL;
  const int64_t R = g.S * g.Lph;
  for (int64_t r = 0; r < g.S; ++r) {
    const std::vector<int64_t>& taps = p.taps[r];
    const std::vector<int64_t>& shift = p.shift[r];
    const int64_t nt = static_cast<int64_t>(taps.size());
    for (int64_t m0 = 0; m0 < g.Lph; m0 += LT) {
      const int64_t lt = std::min<int64_t>(LT, g.Lph - m0);
      V acc[CB][NV];
#pragma GCC unroll 8
      for (int j = 0; j < CB; ++j) {
        if (add) {
          T row[LT] = {};
          std::copy_n(gxph + (c0 + j) * R + r * g.Lph + m0, lt, row);
          std::memcpy(&acc[j][0], row, sizeof(acc[j]));
        } else {
#pragma GCC unroll 8
          for (int v = 0; v < NV; ++v) acc[j][v] = V{};
        }
      }
      for (int64_t o = 0; o < no; ++o) {
        const T* src = gz + o * Lz + m0;
        const T* wo = wt + o * g.K * CB;
        for (int64_t t = 0; t < nt; ++t) {
          const T* q = src - shift[t];
          V xv[NV];
#pragma GCC unroll 8
          for (int v = 0; v < NV; ++v) xv[v] = load_as<V>(q + v * VL);
          const T* wk = wo + taps[t] * CB;
#pragma GCC unroll 8
          for (int j = 0; j < CB; ++j) {
            const T wv = wk[j];
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) acc[j][v] += wv * xv[v];
          }
        }
      }
#pragma GCC unroll 8
      for (int j = 0; j < CB; ++j) {
        T* dst = gxph + (c0 + j) * R + r * g.Lph + m0;
        if (lt == LT) {
          std::memcpy(dst, &acc[j][0], sizeof(acc[j]));
        } else {
          T row[LT];
          std::memcpy(row, &acc[j][0], sizeof(acc[j]));
          std::copy_n(row, lt, dst);
        }
      }
    }
  }
}

// Vectors per channel of the 3- and 4-channel tiles: 4 x 4 in the AVX-512 build (16
// accumulators of its 32 registers). The backward kernel (relu, all gradients) took 7-13% less
// time than with 4 x 2 (c16-s2, c4, c8, 32 x 16 x 512 -> 64 K 3; AMD EPYC Zen 5, 1 thread,
// interleaved). At most 8 vectors: the gz rows' slack (see bwd).
constexpr int kGxNV = LIGHTDL_CONV1D_VEC == 64 ? 4 : 2;

// Output channels [o0, o0 + no), whose gz rows are given.
template <typename T>
void grad_input_all(const T* gz, int64_t Lz, int64_t o0, int64_t no, const GxPlan<T>& p,
                    const Conv1dGeom& g, T* __restrict gxph) {
  const bool add = o0 > 0;
  for (int64_t c0 = 0; c0 < g.C; c0 += kGxCB) {
    const int64_t cb = std::min<int64_t>(kGxCB, g.C - c0);
    const T* wt = p.wt.data() + c0 * g.O * g.K + o0 * g.K * cb;
    switch (cb) {
      case 4: grad_input_tiles<4, kGxNV, T>(gz, Lz, no, wt, p, g, c0, add, gxph); break;
      case 3: grad_input_tiles<3, kGxNV, T>(gz, Lz, no, wt, p, g, c0, add, gxph); break;
      case 2: grad_input_tiles<2, 4, T>(gz, Lz, no, wt, p, g, c0, add, gxph); break;
      default: grad_input_tiles<1, 8, T>(gz, Lz, no, wt, p, g, c0, add, gxph); break;
    }
  }
}

// One batch element's grad_input back from the phased, padded layout: padded position m S + r
// is input position m S + r - P; the positions that are inputs form one run of m per phase.
template <typename T>
void unphase(const T* __restrict gxph, const Conv1dGeom& g, T* __restrict gx) {
  const int64_t R = g.S * g.Lph;
  for (int64_t c = 0; c < g.C; ++c) {
    T* dst = gx + c * g.L;
    const T* src = gxph + c * R;
    if (g.S == 1) {
      std::memcpy(dst, src + g.P, sizeof(T) * g.L);
      continue;
    }
    if (g.S == 2) {  // an interleave of the two phases, which GCC vectorises
      const int64_t h = g.P / 2;
      const T* a = g.P % 2 == 0 ? src + h : src + g.Lph + h;  // even input positions
      const T* b = g.P % 2 == 0 ? src + g.Lph + h : src + h + 1;  // odd ones
      const int64_t pairs = g.L / 2;
      for (int64_t j = 0; j < pairs; ++j) {
        dst[2 * j] = a[j];
        dst[2 * j + 1] = b[j];
      }
      if (g.L % 2 != 0) dst[g.L - 1] = a[pairs];
      continue;
    }
    for (int64_t r = 0; r < g.S; ++r) {
      // m S + r - P in [0, L)  <=>  m in [ceil((P - r) / S), ceil((L + P - r) / S))
      const int64_t m0 = std::max<int64_t>(0, (g.P - r + g.S - 1) / g.S);
      const int64_t m1 = std::min<int64_t>(g.Lph, (g.L + g.P - r + g.S - 1) / g.S);
      const T* s = src + r * g.Lph;
      for (int64_t m = m0; m < m1; ++m) dst[m * g.S + r - g.P] = s[m];
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
  // Its offsets serve the weight gradient; its weights only the recomputed pre-activation.
  const TilePlan<T> tp = tile_plan(w, g, taps.data(), kRecompute && !use_rt);
  const GxPlan<T> plan = gx != nullptr ? gx_plan(w, g) : GxPlan<T>{};
  // gz rows with M zeros either side: the grad_input correlation then reads them without
  // bounds tests (M covers the largest tap offset and the phase overhang). Rows of all output
  // channels at once, unless that exceeds kGzBytes (long series): then groups of output
  // channels, grad_input added up group by group. The rows start on a vector boundary (M and
  // Lz rounded up, aligned storage), so the weight gradient's gz loads touch one cache line
  // each: its kernel took 0-9% less time than with unaligned rows (AVX-512 and AVX2 builds,
  // AMD EPYC Zen 5, 1 thread, interleaved).
  const int64_t M0 = (g.K - 1) * g.D / g.S + 2, VL = kLanes<T>;
  const int64_t M = (M0 + VL - 1) / VL * VL, Lz = (g.Lo + M + M0 + VL - 1) / VL * VL;
  const int64_t og = std::min<int64_t>(
      g.O, std::max<int64_t>(kOB, kGzBytes / static_cast<int64_t>(Lz * sizeof(T)) / kOB * kOB));
  // (+ one tile: a partial last tile of grad_input_tiles reads, and discards, up to 8 vectors
  // past the end.)
  AlignedVector<T> gzp(static_cast<size_t>(og * Lz + 8 * kLanes<T>), T(0));
  using V = VecT<T>;
  const bool gemm_gw = kGwGemm && gw_acc != nullptr && og == g.O && g.O >= kGwGemmMinOut;
  GwGemm<T> gg = gemm_gw ? gw_gemm_plan<T>(g, tp.off.data()) : GwGemm<T>{};
  AlignedVector<V> gwv(gw_acc != nullptr && !gemm_gw ? g.O * CK : 0, V{}),
      gbv(gb_acc != nullptr ? g.O : 0, V{});
  const MaskT<T> tail = tail_mask<T>(g.Lo % kLanes<T>);
  for (int64_t n = n0; n < n1; ++n) {
    const T* xn = xph + n * g.C * R;
    for (int64_t og0 = 0; og0 < g.O; og0 += og) {
      const int64_t og1 = std::min(g.O, og0 + og);
      // gz = grad * act'(z + b), act' applied once, to rows still in L1.
      for (int64_t o0 = og0; o0 < og1; o0 += kOB) {
        const int64_t nb = std::min<int64_t>(kOB, og1 - o0);
        if (kRecompute) conv_rows<T>(xn, tp, use_rt ? &rt : nullptr, g, o0, nb, zrow);
        for (int64_t ob = 0; ob < nb; ++ob) {
          const int64_t o = o0 + ob;
          const T* gr = grad + (n * g.O + o) * g.Lo;
          T* gz = gzp.data() + (o - og0) * Lz + M;  // this row's gz, zero margins either side
          if constexpr (kGradFromOutput<A>) {
            grad_row<A, T>(gr, saved + (n * g.O + o) * g.Lo, T(0), g.Lo, alpha, gz);
          } else if constexpr (kRecompute) {
            grad_row<A, T>(gr, zrow + ob * g.Lo, b != nullptr ? b[o] : T(0), g.Lo, alpha, gz);
          } else {
            std::memcpy(gz, gr, sizeof(T) * g.Lo);
          }
          if (gb_acc != nullptr) sum_acc<T>(gz, g.Lo, tail, gbv[o]);
        }
      }
      if (gemm_gw)
        grad_weight_gemm<T>(gzp.data() + M, Lz, xn, g, gg);
      else if (gw_acc != nullptr)
        grad_weight_rows<T>(gzp.data() + M, Lz, og1 - og0, xn, tp.off.data(), g, tail,
                            gwv.data() + og0 * CK);
      if (gx != nullptr) grad_input_all<T>(gzp.data() + M, Lz, og0, og1 - og0, plan, g, gxph);
    }
    if (gx != nullptr) unphase<T>(gxph, g, gx + n * g.C * g.L);
  }
  for (size_t i = 0; i < gwv.size(); ++i) gw_acc[i] += lane_sum<T>(gwv[i]);
  if (gemm_gw)
    for (int64_t o = 0; o < g.O; ++o)
      for (int64_t i = 0; i < CK; ++i) gw_acc[o * CK + i] += gg.acc[i * gg.Op + o];
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

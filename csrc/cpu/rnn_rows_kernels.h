// Inner loops of the CPU LSTM/GRU step kernels over raw float/double pointers: rows
// [b0, b1) of one time step. Compiled once per instruction set (csrc/cpu/rnn_isa_*.cpp set
// the target with a pragma and the namespace with LIGHTDL_ISA), like bias_act_kernels.h: the
// gate math is a handful of exp/tanh per hidden unit, and at hidden 32 AVX-512 runs it about
// four times faster than the SSE2 baseline.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../rnn_math.h"
#include "rnn_rows.h"

// LIGHTDL_RNN_VEC (set per ISA build): the bytes of the vectors in which the float LSTM forward
// row is written by hand (vec64.h), 64 for AVX-512 and 32 for AVX2; 0 leaves the scalar math to
// the vectoriser.
#ifndef LIGHTDL_RNN_VEC
#define LIGHTDL_RNN_VEC 0
#endif
#if LIGHTDL_RNN_VEC
#include <type_traits>

#include "vec64.h"
#endif

#ifndef LIGHTDL_ISA
#error "define LIGHTDL_ISA before including rnn_rows_kernels.h"
#endif

// LIGHTDL_RNN_STEP_GEMM (AVX2 build): compile lightdl's step GEMM (step_gemm_kernels.h).
#ifdef LIGHTDL_RNN_STEP_GEMM
#include "step_gemm_kernels.h"
#endif
// LIGHTDL_RNN_LSTM_STEP (AVX-512 build): compile the fused LSTM step (lstm_step_kernels.h).
#ifdef LIGHTDL_RNN_LSTM_STEP
#include "lstm_step_kernels.h"
#endif

namespace lightdl {
namespace cpu {
namespace LIGHTDL_ISA {
namespace {

inline bool active(const int64_t* len, int64_t t, int64_t b) { return len == nullptr || t < len[b]; }

// The row loops are separate functions with __restrict parameters (GCC does not vectorise
// them written inline in the row loop).

// One row of the LSTM forward; Live: the row is within its sequence (a template parameter:
// a runtime select in the loop body stops GCC from vectorising it). Past the end the state
// is kept and the output is 0; the gates are still written (the op's outputs stay defined).
template <typename T, bool Live>
void lstm_fwd_row(T* __restrict g, const T* __restrict bias, T* __restrict c, T* __restrict h,
                  T* __restrict y, T* __restrict cs, int64_t H) {
  int64_t j = 0;
#if LIGHTDL_RNN_VEC
  if constexpr (std::is_same_v<T, float>) {  // L hidden units at a time
    using V = typename VecN<float, LIGHTDL_RNN_VEC>::type;
    constexpr int64_t L = LIGHTDL_RNN_VEC / sizeof(float);
    for (; j + L <= H; j += L) {
      V i = load_as<V>(g + j) + load_as<V>(bias + j),
        f = load_as<V>(g + H + j) + load_as<V>(bias + H + j),
        gg = load_as<V>(g + 2 * H + j) + load_as<V>(bias + 2 * H + j),
        o = load_as<V>(g + 3 * H + j) + load_as<V>(bias + 3 * H + j), cn, hn;
      const V cp = load_as<V>(c + j);
      rnn_math::lstm_fwd_lanes(i, f, gg, o, cp, cn, hn);
      store_as(g + j, i), store_as(g + H + j, f), store_as(g + 2 * H + j, gg),
          store_as(g + 3 * H + j, o);
      if constexpr (Live) {
        store_as(cs + j, cn), store_as(c + j, cn), store_as(h + j, hn), store_as(y + j, hn);
      } else {
        store_as(cs + j, cp), store_as(y + j, V{});
      }
    }
  }
#endif
  for (; j < H; ++j) {
    T i = g[j] + bias[j], f = g[H + j] + bias[H + j], gg = g[2 * H + j] + bias[2 * H + j],
      o = g[3 * H + j] + bias[3 * H + j], cn, hn;
    const T cp = c[j];
    rnn_math::lstm_fwd_cpu(i, f, gg, o, cp, cn, hn);
    g[j] = i, g[H + j] = f, g[2 * H + j] = gg, g[3 * H + j] = o;
    if constexpr (Live) {
      cs[j] = cn, c[j] = cn, h[j] = hn, y[j] = hn;
    } else {
      cs[j] = cp, y[j] = T(0);
    }
  }
}

template <typename T, bool HasGy>
void lstm_bwd_row(const T* __restrict g, const T* __restrict c, const T* __restrict cp,
                  const T* __restrict gy, T* __restrict dh, T* __restrict dc, T* __restrict dg,
                  int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    T dcj = dc[j], di, df, dgg, d_o;
    T dhj = dh[j];
    if constexpr (HasGy) dhj += gy[j];
    rnn_math::lstm_bwd(g[j], g[H + j], g[2 * H + j], g[3 * H + j], cp[j], c[j], dhj, dcj, di, df,
                       dgg, d_o);
    dg[j] = di, dg[H + j] = df, dg[2 * H + j] = dgg, dg[3 * H + j] = d_o;
    dc[j] = dcj;
    dh[j] = T(0);  // h_prev reaches h' only through W_hh
  }
}

template <typename T, bool Live>
void gru_fwd_row(const T* __restrict xg, const T* __restrict hg, const T* __restrict bi,
                 const T* __restrict bh, T* __restrict h, T* __restrict y, T* __restrict s,
                 int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    T r, z, n, hn;
    const T hgn = hg[2 * H + j] + bh[2 * H + j];
    rnn_math::gru_fwd_cpu(xg[j] + bi[j], xg[H + j] + bi[H + j], xg[2 * H + j] + bi[2 * H + j],
                      hg[j] + bh[j], hg[H + j] + bh[H + j], hgn, h[j], r, z, n, hn);
    s[j] = r, s[H + j] = z, s[2 * H + j] = n, s[3 * H + j] = hgn;
    if constexpr (Live) {
      y[j] = hn, h[j] = hn;
    } else {
      y[j] = T(0);
    }
  }
}

template <typename T, bool HasGy>
void gru_bwd_row(const T* __restrict s, const T* __restrict hp, const T* __restrict gy,
                 T* __restrict dh, T* __restrict dx, T* __restrict dhg, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    T dr, dz, dn, dhn, dhp;
    T dhj = dh[j];
    if constexpr (HasGy) dhj += gy[j];
    rnn_math::gru_bwd(s[j], s[H + j], s[2 * H + j], s[3 * H + j], hp[j], dhj, dr, dz, dn, dhn, dhp);
    dx[j] = dr, dx[H + j] = dz, dx[2 * H + j] = dn;
    dhg[j] = dr, dhg[H + j] = dz, dhg[2 * H + j] = dhn;
    dh[j] = dhp;
  }
}

template <typename T>
void lstm_fwd(const rnn::LstmFwdStep& a, int64_t b0, int64_t b1) {
  const int64_t H = a.H;
  for (int64_t b = b0; b < b1; ++b) {
    T *g = static_cast<T*>(a.gates) + b * 4 * H, *c = static_cast<T*>(a.c) + b * H,
      *h = static_cast<T*>(a.h) + b * H, *y = static_cast<T*>(a.y) + b * H,
      *cs = static_cast<T*>(a.cs) + b * H;
    const T* bias = static_cast<const T*>(a.bias);
    if (active(a.len, a.t, b))
      lstm_fwd_row<T, true>(g, bias, c, h, y, cs, H);
    else
      lstm_fwd_row<T, false>(g, bias, c, h, y, cs, H);
  }
}

template <typename T>
void lstm_bwd(const rnn::LstmBwdStep& a, int64_t b0, int64_t b1) {
  const int64_t H = a.H, ldg = a.ldg > 0 ? a.ldg : 4 * H;
  for (int64_t b = b0; b < b1; ++b) {
    T* dg = static_cast<T*>(a.dgates) + b * ldg;
    if (!active(a.len, a.t, b)) {  // dh, dc pass through unchanged
      std::fill(dg, dg + 4 * H, T(0));
      continue;
    }
    const T *g = static_cast<const T*>(a.gates) + b * 4 * H,
            *c = static_cast<const T*>(a.c) + b * H,
            *cp = static_cast<const T*>(a.c_prev) + b * H,
            *gy = a.gy ? static_cast<const T*>(a.gy) + b * H : nullptr;
    T *dh = static_cast<T*>(a.dh) + b * H, *dc = static_cast<T*>(a.dc) + b * H;
    if (gy != nullptr)
      lstm_bwd_row<T, true>(g, c, cp, gy, dh, dc, dg, H);
    else
      lstm_bwd_row<T, false>(g, c, cp, gy, dh, dc, dg, H);
  }
}

template <typename T>
void gru_fwd(const rnn::GruFwdStep& a, int64_t b0, int64_t b1) {
  const int64_t H = a.H;
  for (int64_t b = b0; b < b1; ++b) {
    const T *xg = static_cast<const T*>(a.xg) + b * 3 * H,
            *hg = static_cast<const T*>(a.hg) + b * 3 * H;
    T *h = static_cast<T*>(a.h) + b * H, *y = static_cast<T*>(a.y) + b * H,
      *sv = static_cast<T*>(a.saved) + b * 4 * H;
    const T *bi = static_cast<const T*>(a.b_ih), *bh = static_cast<const T*>(a.b_hh);
    if (active(a.len, a.t, b))
      gru_fwd_row<T, true>(xg, hg, bi, bh, h, y, sv, H);
    else
      gru_fwd_row<T, false>(xg, hg, bi, bh, h, y, sv, H);
  }
}

template <typename T>
void gru_bwd(const rnn::GruBwdStep& a, int64_t b0, int64_t b1) {
  const int64_t H = a.H;
  for (int64_t b = b0; b < b1; ++b) {
    T* dx = static_cast<T*>(a.dx) + b * 3 * H;
    T* dhg = static_cast<T*>(a.dhg) + b * 3 * H;
    if (!active(a.len, a.t, b)) {  // dh passes through unchanged
      std::fill(dx, dx + 3 * H, T(0));
      std::fill(dhg, dhg + 3 * H, T(0));
      continue;
    }
    const T *sv = static_cast<const T*>(a.saved) + b * 4 * H,
            *hp = static_cast<const T*>(a.h_prev) + b * H,
            *gy = a.gy ? static_cast<const T*>(a.gy) + b * H : nullptr;
    T* dh = static_cast<T*>(a.dh) + b * H;
    if (gy != nullptr)
      gru_bwd_row<T, true>(sv, hp, gy, dh, dx, dhg, H);
    else
      gru_bwd_row<T, false>(sv, hp, gy, dh, dx, dhg, H);
  }
}


template <typename T>
RnnRows make_rows() {
  RnnRows r{&lstm_fwd<T>, &lstm_bwd<T>, &gru_fwd<T>, &gru_bwd<T>, nullptr, 0, nullptr};
#ifdef LIGHTDL_RNN_STEP_GEMM
  if constexpr (std::is_same_v<T, float>) {
    r.step_gemm = &step_gemm_kernel::step_gemm;
    r.step_gemm_panel = step_gemm_kernel::P;
#ifdef LIGHTDL_RNN_LSTM_STEP
    r.lstm_step = &lstm_step_kernel::lstm_step;
#endif
  }
#endif
  return r;
}

}  // namespace

const RnnRows& rnn_rows_f32() {
  static const RnnRows t = make_rows<float>();
  return t;
}
const RnnRows& rnn_rows_f64() {
  static const RnnRows t = make_rows<double>();
  return t;
}

}  // namespace LIGHTDL_ISA
}  // namespace cpu
}  // namespace lightdl

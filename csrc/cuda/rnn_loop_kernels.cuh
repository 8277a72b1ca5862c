// The kernels of the one-launch LSTM / GRU time loops (launched by csrc/cuda/rnn_loop.cu, which
// explains the design). In a header of their own, with no CUDA runtime calls, so that
// tests/emu/rnn_loop_emu.cpp can run them on the CPU, one std::thread per CUDA thread and a
// std::barrier for __syncthreads: the kernels' indexing is checked on every CI run, without a
// GPU.
#pragma once

#include <cstdint>

#include "rnn_kernels.h"
#include "rnn_math.h"

namespace lightdl {
namespace cuda {
namespace {

enum class Cell { LSTM, GRU };
template <Cell C>
constexpr int kGates = C == Cell::LSTM ? 4 : 3;

__device__ __forceinline__ bool live_at(const int64_t* len, int64_t t, int64_t b) {
  return len == nullptr || t < len[b];
}

template <Cell C, typename T, int R>
__global__ void fwd_loop(rnn::LoopFwd a) {
  constexpr int NG = kGates<C>;
  extern __shared__ unsigned char smem_raw[];
  T* hs = reinterpret_cast<T*>(smem_raw);  // [2][R][H]: h before / after the step
  const int64_t H = a.H, B = a.B, GH = NG * H;
  const int j = threadIdx.x;
  const bool active = j < H;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * R;
  const int rows = static_cast<int>(B - row0 < R ? B - row0 : R);
  T* gates = static_cast<T*>(a.gates);
  const T* wt = static_cast<const T*>(a.w_hh_t);
  const T* bias = static_cast<const T*>(a.bias);
  const T* bias_hh = static_cast<const T*>(a.bias_hh);
  T* h = static_cast<T*>(a.h);
  T* c = static_cast<T*>(a.c);
  T* y = static_cast<T*>(a.y);
  T* saved = static_cast<T*>(a.saved);

  T creg[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    T hv = T(0), cv = T(0);
    if (active && r < rows) {
      hv = h[(row0 + r) * H + j];
      if constexpr (C == Cell::LSTM) cv = c[(row0 + r) * H + j];
    }
    if (active) hs[r * H + j] = hv, hs[(R + r) * H + j] = T(0);  // rows past B stay 0
    creg[r] = cv;
  }
  __syncthreads();

  int cur = 0;
  for (int64_t t = 0; t < a.T; ++t) {
    const T* hc = hs + cur * R * H;
    T* hn_s = hs + (cur ^ 1) * R * H;
    if (active) {
      T acc[NG][R];
#pragma unroll
      for (int g = 0; g < NG; ++g)
#pragma unroll
        for (int r = 0; r < R; ++r) acc[g][r] = T(0);
#pragma unroll 4
      for (int64_t k = 0; k < H; ++k) {
        T w[NG];
#pragma unroll
        for (int g = 0; g < NG; ++g) w[g] = __ldg(wt + k * GH + g * H + j);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const T hv = hc[r * H + k];
#pragma unroll
          for (int g = 0; g < NG; ++g) acc[g][r] += hv * w[g];
        }
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (r >= rows) break;
        const int64_t b = row0 + r, o = t * B + b;
        const bool lv = live_at(a.len, t, b);
        const T hp = hc[r * H + j];
        T hnew = hp, hn;
        if constexpr (C == Cell::LSTM) {
          T* g = gates + o * GH;
          T i = g[j] + acc[0][r] + bias[j], f = g[H + j] + acc[1][r] + bias[H + j],
            gg = g[2 * H + j] + acc[2][r] + bias[2 * H + j],
            og = g[3 * H + j] + acc[3][r] + bias[3 * H + j], cn;
          const T cp = creg[r];
          rnn_math::lstm_fwd(i, f, gg, og, cp, cn, hn);
          if (saved != nullptr) {
            g[j] = i, g[H + j] = f, g[2 * H + j] = gg, g[3 * H + j] = og;
            saved[o * H + j] = lv ? cn : cp;
          }
          if (lv) creg[r] = cn;
        } else {
          const T* x3 = gates + o * GH;
          const T hgn = acc[2][r] + bias_hh[2 * H + j];
          T rg, z, n;
          rnn_math::gru_fwd(x3[j] + bias[j], x3[H + j] + bias[H + j],
                            x3[2 * H + j] + bias[2 * H + j], acc[0][r] + bias_hh[j],
                            acc[1][r] + bias_hh[H + j], hgn, hp, rg, z, n, hn);
          if (saved != nullptr) {
            T* s = saved + o * 4 * H;
            s[j] = rg, s[H + j] = z, s[2 * H + j] = n, s[3 * H + j] = hgn;
          }
        }
        if (lv) hnew = hn;
        y[o * H + j] = lv ? hn : T(0);
        hn_s[r * H + j] = hnew;
      }
    }
    __syncthreads();  // the step's h is complete before anyone reads it
    cur ^= 1;
  }
  if (active) {
    for (int r = 0; r < rows; ++r) {
      h[(row0 + r) * H + j] = hs[(cur * R + r) * H + j];
      if constexpr (C == Cell::LSTM) c[(row0 + r) * H + j] = creg[r];
    }
  }
}

template <Cell C, typename T, int R>
__global__ void bwd_loop(rnn::LoopBwd a) {
  constexpr int NG = kGates<C>;
  extern __shared__ unsigned char smem_raw[];
  T* ds = reinterpret_cast<T*>(smem_raw);  // [R][G H]: the hidden-side gate gradients of a step
  const int64_t H = a.H, B = a.B, GH = NG * H;
  const int j = threadIdx.x;
  const bool active = j < H;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * R;
  const int rows = static_cast<int>(B - row0 < R ? B - row0 : R);
  const T* saved = static_cast<const T*>(a.saved);
  const T* cs = static_cast<const T*>(a.cs);
  const T* c0 = static_cast<const T*>(a.c0);
  const T* y = static_cast<const T*>(a.y);
  const T* h0 = static_cast<const T*>(a.h0);
  const T* gy = static_cast<const T*>(a.gy);
  const T* w = static_cast<const T*>(a.w_hh);
  T* dh = static_cast<T*>(a.dh);
  T* dc = static_cast<T*>(a.dc);
  T* dg = static_cast<T*>(a.dg);
  T* dg_hh = static_cast<T*>(a.dg_hh);

  T dhreg[R], dcreg[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const bool in = active && r < rows;
    dhreg[r] = in ? dh[(row0 + r) * H + j] : T(0);
    dcreg[r] = T(0);
    if constexpr (C == Cell::LSTM) dcreg[r] = in ? dc[(row0 + r) * H + j] : T(0);
  }
  // Rows past B never get written: zero them once.
  for (int64_t q = j; q < (R - rows) * GH; q += blockDim.x) ds[rows * GH + q] = T(0);

  for (int64_t t = a.T - 1; t >= 0; --t) {
    if (active) {
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (r >= rows) break;
        const int64_t b = row0 + r, o = t * B + b;
        T* dgo = dg + o * GH;
        T* dsr = ds + r * GH;
        if (!live_at(a.len, t, b)) {  // dh (and dc) pass through unchanged
#pragma unroll
          for (int g = 0; g < NG; ++g) {
            dgo[g * H + j] = T(0);
            dsr[g * H + j] = T(0);
            if constexpr (C == Cell::GRU) dg_hh[o * GH + g * H + j] = T(0);
          }
          continue;
        }
        const T dhk = gy != nullptr ? dhreg[r] + gy[o * H + j] : dhreg[r];
        const T* s = saved + o * 4 * H;
        if constexpr (C == Cell::LSTM) {
          const T cprev = t > 0 ? cs[(o - B) * H + j] : c0[b * H + j];
          T dck = dcreg[r], di, df, dgg, d_o;
          rnn_math::lstm_bwd(s[j], s[H + j], s[2 * H + j], s[3 * H + j], cprev, cs[o * H + j],
                             dhk, dck, di, df, dgg, d_o);
          dgo[j] = di, dgo[H + j] = df, dgo[2 * H + j] = dgg, dgo[3 * H + j] = d_o;
          dsr[j] = di, dsr[H + j] = df, dsr[2 * H + j] = dgg, dsr[3 * H + j] = d_o;
          dcreg[r] = dck;
          dhreg[r] = T(0);  // h_prev reaches h' only through W_hh (added below)
        } else {
          const T hp = t > 0 ? y[(o - B) * H + j] : h0[b * H + j];
          T dr, dz, dn, dhn, dhp;
          rnn_math::gru_bwd(s[j], s[H + j], s[2 * H + j], s[3 * H + j], hp, dhk, dr, dz, dn, dhn,
                            dhp);
          T* dho = dg_hh + o * GH;
          dgo[j] = dr, dgo[H + j] = dz, dgo[2 * H + j] = dn;
          dho[j] = dr, dho[H + j] = dz, dho[2 * H + j] = dhn;
          dsr[j] = dr, dsr[H + j] = dz, dsr[2 * H + j] = dhn;
          dhreg[r] = dhp;
        }
      }
    }
    __syncthreads();  // the step's gate gradients are complete
    if (active) {
#pragma unroll 4
      for (int64_t q = 0; q < GH; ++q) {
        const T wq = __ldg(w + q * H + j);
#pragma unroll
        for (int r = 0; r < R; ++r) dhreg[r] += ds[r * GH + q] * wq;
      }
    }
    __syncthreads();  // read before the next step overwrites ds
  }
  if (active) {
    for (int r = 0; r < rows; ++r) {
      dh[(row0 + r) * H + j] = dhreg[r];
      if constexpr (C == Cell::LSTM) dc[(row0 + r) * H + j] = dcreg[r];
    }
  }
}

}  // namespace
}  // namespace cuda
}  // namespace lightdl

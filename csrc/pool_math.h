// Geometry and window math of act_pool1d (pool(act(x)) over the last dim), shared by the CPU
// kernels (csrc/cpu/act_pool.cpp) and the CUDA kernels (csrc/cuda/act_pool.cu).
//
// Window o covers input positions [o S - P, o S - P + K) clipped to [0, L): zero padding for
// average pooling (count_include_pad, divisor K), ignored positions for max pooling, as in
// F.max_pool1d / F.avg_pool1d with ceil_mode=False and P <= K / 2 (so no window is empty).
#pragma once

#include <cstdint>

#include "activations.h"

#if defined(__CUDACC__) || defined(__HIPCC__)
#define LIGHTDL_POOL_HD __host__ __device__ __forceinline__
#else
#define LIGHTDL_POOL_HD inline
#endif

namespace lightdl {

enum class Pool : int { Max = 0, Avg = 1 };

struct Pool1dGeom {
  int64_t R;   // rows (N * C)
  int64_t L;   // input length
  int64_t Lo;  // output length
  int64_t K;   // window
  int64_t S;   // stride
  int64_t P;   // padding, each side
};

// floor((L + 2P - K) / S) + 1, as nn.MaxPool1d; 0 when the input is too short.
LIGHTDL_POOL_HD int64_t pool1d_out_len(int64_t L, int64_t K, int64_t S, int64_t P) {
  const int64_t span = L + 2 * P - K;
  return span < 0 ? 0 : span / S + 1;
}

// The input positions [j0, j1) window o reads.
LIGHTDL_POOL_HD void pool1d_window(const Pool1dGeom& g, int64_t o, int64_t& j0, int64_t& j1) {
  const int64_t start = o * g.S - g.P;
  j0 = start < 0 ? 0 : start;
  j1 = start + g.K < g.L ? start + g.K : g.L;
}

// The windows [o0, o1) that read input position i (those with o S - P <= i < o S - P + K).
LIGHTDL_POOL_HD void pool1d_windows_of(const Pool1dGeom& g, int64_t i, int64_t& o0,
                                       int64_t& o1) {
  const int64_t t = i + g.P - g.K;  // o S > t
  o0 = t < 0 ? 0 : t / g.S + 1;
  const int64_t hi = (i + g.P) / g.S + 1;
  o1 = hi < g.Lo ? hi : g.Lo;
}

LIGHTDL_POOL_HD bool pool_isnan(float v) { return v != v; }
LIGHTDL_POOL_HD bool pool_isnan(double v) { return v != v; }

// max over j in [j0, j1) of act(row[j]), and `arg`, where it is: the first maximum, or the last
// NaN (NaN propagates), which is PyTorch's max-pooling rule (its backward routes the gradient
// to the same position).
template <Act A, typename acc_t, typename scalar_t>
LIGHTDL_POOL_HD acc_t pool1d_window_max(const scalar_t* row, int64_t j0, int64_t j1, acc_t alpha,
                                        int64_t& arg) {
  acc_t m = ActMath<A>::fwd(static_cast<acc_t>(row[j0]), alpha);
  arg = j0;
  for (int64_t j = j0 + 1; j < j1; ++j) {
    const acc_t v = ActMath<A>::fwd(static_cast<acc_t>(row[j]), alpha);
    if (v > m || pool_isnan(v)) {
      m = v;
      arg = j;
    }
  }
  return m;
}

// sum over j in [j0, j1) of act(row[j]) / K (zero padding counts, divisor K).
template <Act A, typename acc_t, typename scalar_t>
LIGHTDL_POOL_HD acc_t pool1d_window_avg(const scalar_t* row, int64_t j0, int64_t j1, int64_t K,
                                        acc_t alpha) {
  acc_t s = acc_t(0);
  for (int64_t j = j0; j < j1; ++j) s += ActMath<A>::fwd(static_cast<acc_t>(row[j]), alpha);
  return s / static_cast<acc_t>(K);
}

}  // namespace lightdl

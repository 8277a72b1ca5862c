// The kernel of the fused LSTM forward step (csrc/cpu/lstm_step.h), compiled in the AVX2 and
// AVX-512 builds next to the step GEMM whose accumulation loop it shares
// (step_gemm_kernels.h, included first by rnn_rows_kernels.h).
//
// A tile is R rows by one panel: the four gates of L hidden units (L = the vector's lanes),
// accumulated over all I + H columns of [x_t | h] and then turned into c_t and h_t in
// registers (rnn_math::lstm_fwd_lanes, the math of the separate pointwise kernel). Unlike the
// plain step GEMM the panel is not sliced along K: the epilogue needs the whole sum, and a
// panel of up to a few hundred rows streams from L2 at a fraction of its bandwidth.
//
// Measured on the lstm op's forward against the step GEMM + pointwise kernel
// (LIGHTDL_LSTM_FUSED_STEP=0), interleaved in one process, AMD EPYC Zen 5, the benchmark
// shapes b64 h32, b64 h64, b128 h256, two runs: AVX-512 took 1.02-1.15x less time on one
// thread and 1.04-1.33x on two, saving for the backward or not. The AVX2 build (the same host capped with
// LIGHTDL_CPU_ISA=avx2) took 1.10-1.16x *more* at hidden 32-64 (0.98-1.02x at 256), so it is
// built for AVX-512 only (rnn_isa_avx512.cpp). The gate math per tile holds 3 rows of 8 lanes
// there against 6 of 16, and with 16 registers its constants are reloaded per tile.
#pragma once

#include "lstm_step.h"

namespace lightdl {
namespace cpu {
namespace LIGHTDL_ISA {
namespace {
namespace lstm_step_kernel {

using step_gemm_kernel::accumulate;
using step_gemm_kernel::L;
using step_gemm_kernel::load_n;
using step_gemm_kernel::P;
using step_gemm_kernel::store_n;
using V = step_gemm_kernel::V;

// Rows [r0, r0 + R) by panel p (hidden units [u0, u0 + nu), nu <= L).
template <int R>
void tile(const LstmStepArgs& a, const float* wp, int64_t r0, int64_t u0, int64_t nu) {
  V acc[R][4] = {};
  if (a.I > 0) accumulate<R>(acc, a.x + r0 * a.ldx, a.ldx, 1, wp, P, a.I);
  accumulate<R>(acc, a.h + r0 * a.H, a.H, 1, wp + a.I * P, P, a.H);
  // Through L1: the gate math of a row with the other rows' accumulators still live would
  // spill them.
  V sums[R][4];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < 4; ++q) store_as(&sums[r][q], acc[r][q]);
  const int64_t H = a.H;
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r, s = row * H + u0;
    V i = load_as<V>(&sums[r][0]) + load_n(a.bias + u0, nu),
      f = load_as<V>(&sums[r][1]) + load_n(a.bias + H + u0, nu),
      g = load_as<V>(&sums[r][2]) + load_n(a.bias + 2 * H + u0, nu),
      o = load_as<V>(&sums[r][3]) + load_n(a.bias + 3 * H + u0, nu), cn, hn;
    const V cp = load_n(a.c + s, nu);
    rnn_math::lstm_fwd_lanes(i, f, g, o, cp, cn, hn);
    if (a.gates != nullptr) {  // the activations, in the (4 H) row layout the backward reads
      float* gr = a.gates + row * 4 * H + u0;
      store_n(gr, i, nu), store_n(gr + H, f, nu), store_n(gr + 2 * H, g, nu),
          store_n(gr + 3 * H, o, nu);
    }
    if (a.len == nullptr || a.t < a.len[row]) {
      store_n(a.c + s, cn, nu), store_n(a.h_out + s, hn, nu), store_n(a.y + s, hn, nu);
      if (a.cs != nullptr) store_n(a.cs + s, cn, nu);
    } else {  // past the end: the state is kept, the output is 0
      store_n(a.h_out + s, load_n(a.h + s, nu), nu), store_n(a.y + s, V{}, nu);
      if (a.cs != nullptr) store_n(a.cs + s, cp, nu);
    }
  }
}

// The rows [r, r + n), n <= kRows, in one tile of that many.
template <int R = step_gemm_kernel::kRows>
void rows_tile(const LstmStepArgs& a, const float* wp, int64_t r, int64_t n, int64_t u0,
               int64_t nu) {
  if constexpr (R > 0) {
    if (n == R) return tile<R>(a, wp, r, u0, nu);
    rows_tile<R - 1>(a, wp, r, n, u0, nu);
  }
}

void lstm_step(const LstmStepArgs& a) {
  constexpr int R = step_gemm_kernel::kRows;
  const int64_t K = a.I + a.H;
  for (int64_t u0 = 0; u0 < a.H; u0 += L) {  // panels are the outer loop, as in step_gemm
    const float* wp = a.w + (u0 / L) * K * P;
    const int64_t nu = std::min(L, a.H - u0);
    for (int64_t r = 0, n; r < a.m; r += n) {  // tiles of rows as in step_gemm
      n = step_gemm_kernel::tile_rows(a.m, r);
      if (n == R) tile<R>(a, wp, r, u0, nu);
      else rows_tile(a, wp, r, n, u0, nu);
    }
  }
}

}  // namespace lstm_step_kernel
}  // namespace
}  // namespace LIGHTDL_ISA
}  // namespace cpu
}  // namespace lightdl

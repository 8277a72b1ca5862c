// The kernel of lightdl's step GEMM (csrc/cpu/step_gemm.h), compiled in the AVX2 and AVX-512
// builds of the RNN row loops (rnn_rows_kernels.h includes it inside its ISA namespace), in
// vectors of the ISA's width (LIGHTDL_RNN_VEC).
//
// A tile is R rows of C by one panel of 4 vectors' width (32 columns in AVX2, 64 in AVX-512):
// 4 R accumulators; per k it takes 4 vector loads of the packed panel and R broadcasts for
// 4 R FMAs. Panels are the outer loop, so a panel slice stays in L1 while every row tile goes
// past it. Against MKL's GEMMs (LIGHTDL_RNN_CPU_GEMM=mkl; bench_rnn.py's fused-mkl column):
// - AVX2, AMD EPYC Zen 3 (benchmarks/results/cpu-avx2/rnn.md, per-step products only): the
//   LSTM/GRU layers took 0.99-1.22x less time at hidden 32-128 on one thread, 1.04-1.28x on
//   two; 0.91-0.98x at hidden 256 with batch 128 on one thread (MKL's kernel at its best),
//   0.99-1.21x with 64 rows per thread. The weight gradients came later and were measured on
//   Zen 5 capped at AVX2 only (LIGHTDL_CPU_ISA=avx2, cpu-amd-avx512/avx2-capped/rnn.md:
//   forward+backward 1.06-1.19x on one thread, 0.96-1.23x on two).
// - AVX-512, AMD EPYC Zen 5 (cpu-amd-avx512/rnn.md, per step and weight gradients), where MKL
//   runs its AVX2 kernels: 1.31-2.29x on every shape, 1 and 2 threads. The tiles run at about
//   the core's FMA peak there (~250 GFLOP/s measured with a register-only FMA loop).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "step_gemm.h"
#include "vec64.h"

namespace lightdl {
namespace cpu {
namespace LIGHTDL_ISA {
namespace {
namespace step_gemm_kernel {

using V = VecN<float, LIGHTDL_RNN_VEC>::type;
constexpr int64_t L = LIGHTDL_RNN_VEC / sizeof(float);  // lanes
constexpr int64_t P = 4 * L;                             // panel width

// The first n lanes of p (the rest 0) / into p: columns past C's last in the last panel.
inline V load_n(const float* p, int64_t n) {
  if (n >= L) return load_as<V>(p);
  float t[L] = {};
  if (n > 0) std::memcpy(t, p, n * sizeof(float));
  return load_as<V>(t);
}
inline void store_n(float* p, const V& v, int64_t n) {
  if (n >= L) return store_as(p, v);
  float t[L];
  store_as(t, v);
  if (n > 0) std::memcpy(p, t, n * sizeof(float));
}

// *p in every lane. (fm::splat, 0 + *p, costs an add before the broadcast: 0 + -0 is +0;
// *p - 0 is exact, so GCC leaves just the broadcast.)
inline V broadcast(const float* p) { return *p - V{}; }

// acc[r][q] += A[r][k] w[k][q] over k < K; A[r][k] at a + r lda + k ka; w: 4 vectors per k.
template <int R>
inline void accumulate(V (&acc)[R][4], const float* a, int64_t lda, int64_t ka, const float* w,
                       int64_t K) {
  for (int64_t k = 0; k < K; ++k, w += P, a += ka) {
    const V w0 = load_as<V>(w), w1 = load_as<V>(w + L), w2 = load_as<V>(w + 2 * L),
            w3 = load_as<V>(w + 3 * L);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const V s = broadcast(a + r * lda);
      acc[r][0] += s * w0;
      acc[r][1] += s * w1;
      acc[r][2] += s * w2;
      acc[r][3] += s * w3;
    }
  }
}

// Rows [r0, r0 + R) by the panel at column j0 (packed at wp), nv valid columns (<= P), over
// the left operand's columns [kb, ke).
template <int R>
void tile(const StepGemmArgs& a, const float* wp, int64_t r0, int64_t j0, int64_t nv, int64_t kb,
          int64_t ke) {
  V acc[R][4];
  const bool load = a.accumulate || kb > 0;
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < 4; ++q)
      acc[r][q] = load ? load_n(a.c + (r0 + r) * a.ldc + j0 + q * L, nv - q * L) : V{};
  const int64_t e0 = std::min(ke, a.k0);  // the columns of A0 in [kb, ke), then those of A1
  if (kb < e0)
    accumulate<R>(acc, a.a0 + r0 * a.lda0 + kb * a.ka, a.lda0, a.ka, wp + kb * P, e0 - kb);
  const int64_t b1 = std::max(kb, a.k0);
  if (b1 < ke)
    accumulate<R>(acc, a.a1 + r0 * a.lda1 + (b1 - a.k0) * a.ka, a.lda1, a.ka, wp + b1 * P,
                  ke - b1);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < 4; ++q) store_n(a.c + (r0 + r) * a.ldc + j0 + q * L, acc[r][q], nv - q * L);
}

// Rows per tile: 4 R accumulators, 4 panel vectors and a broadcast in the registers: 3 rows in
// AVX2's 16 (GCC takes the panel vectors as memory operands of the FMAs), 6 in AVX-512's 32.
// (AVX-512, AMD EPYC Zen 5, LSTM layers on one thread against MKL's GEMMs: 4 rows did as well
// as 6, within noise; 8 rows spill and gave 3-7% less.)
constexpr int kRows = L == 8 ? 3 : 6;
// At most 24 kB of a panel per pass (of L1's 32-48 kB; 192 rows of 32 columns, 96 of 64):
// longer panels (the backward's K = 4 H, the weight gradients' K = a chunk's rows) are split
// into equal slices, each C tile reloaded for each. AVX2 (AMD EPYC Zen 3), MKL's time over ours
// for the LSTM backward op at hidden 256 (a 128 kB panel): 0.96 unsliced, 1.01-1.06 with slices
// of 128 or 192 rows; the forward at hidden 256 (K = 288) within 5% of MKL's either way, a
// little closer with 192. AVX-512 (Zen 5): 64, 96 or 192 rows of 64 columns within 5% of each
// other on the LSTM layers; 96 was as fast as any.
constexpr int64_t kSlice = 24576 / (P * sizeof(float));

// The rows [r, r + n), n <= kRows, in one tile of that many.
template <int R = kRows>
void rows_tile(const StepGemmArgs& a, const float* wp, int64_t r, int64_t n, int64_t j0,
               int64_t nv, int64_t kb, int64_t ke) {
  if constexpr (R > 0) {
    if (n == R) return tile<R>(a, wp, r, j0, nv, kb, ke);
    rows_tile<R - 1>(a, wp, r, n, j0, nv, kb, ke);
  }
}

// How many rows the tiles over m rows take: kRows each, except that a remainder of at most
// kRows / 3 rows (1-2 in AVX-512, 1 in AVX2) is merged with the last full tile and the two
// split evenly: a 1- or 2-row tile spends more on loading the panel than on FMAs. A small
// gain: forward+backward of the LSTM and GRU layers took 0.4-1.6% less time (AVX-512, AMD
// EPYC Zen 5, interleaved; batch 32 and 128 on one thread, 64 on two).
inline int64_t tile_rows(int64_t m, int64_t r) {
  const int64_t left = m - r;
  if (left >= 2 * kRows || left <= kRows) return std::min<int64_t>(left, kRows);
  if (left - kRows > kRows / 3) return kRows;
  return (left + 1) / 2;
}

void step_gemm(const StepGemmArgs& a) {
  const int64_t K = a.k0 + a.k1;
  const int64_t slices = (K + kSlice - 1) / kSlice, slice = (K + slices - 1) / slices;
  for (int64_t j0 = 0; j0 < a.n; j0 += P) {
    const float* wp = a.w + j0 * K;  // panel j0 / P
    const int64_t nv = std::min(P, a.n - j0);
    for (int64_t kb = 0; kb < K; kb += slice) {
      const int64_t ke = std::min(K, kb + slice);
      for (int64_t r = 0, n; r < a.m; r += n) {
        n = tile_rows(a.m, r);
        if (n == kRows) tile<kRows>(a, wp, r, j0, nv, kb, ke);
        else rows_tile(a, wp, r, n, j0, nv, kb, ke);
      }
    }
  }
}

}  // namespace step_gemm_kernel
}  // namespace
}  // namespace LIGHTDL_ISA
}  // namespace cpu
}  // namespace lightdl

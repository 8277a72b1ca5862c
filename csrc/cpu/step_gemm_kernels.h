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
//   forward+backward 1.12-1.21x on one thread, 1.10-1.28x on two).
// - AVX-512, AMD EPYC Zen 5 (cpu-amd-avx512/rnn.md, per step and weight gradients), where MKL
//   runs its AVX2 kernels: 1.31-2.29x on every shape, 1 and 2 threads. The tiles run at about
//   the core's FMA peak there (~250 GFLOP/s measured with a register-only FMA loop).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include <unistd.h>

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

// Walks StepGemmArgs::pf a few cache lines per call of step(): as many per inner iteration of
// the product as cover the ranges over all of its iterations.
class Prefetcher {
 public:
  Prefetcher(const StepGemmArgs& a, int64_t iterations) : a_(a) {
    int64_t lines = 0;
    for (const PrefetchRange& r : a.pf) lines += (r.bytes + kLine - 1) / kLine;
    per_step_ = (lines + iterations - 1) / std::max<int64_t>(iterations, 1);
    next_range();
  }
  bool any() const { return range_ < kRanges; }
  inline void step() {
    for (int64_t i = 0; i < per_step_ && range_ < kRanges; ++i) {
      __builtin_prefetch(p_, 0, 2);  // into L2 (L1 holds the panel slice)
      p_ += kLine;
      if (p_ >= end_) ++range_, next_range();
    }
  }

 private:
  static constexpr int64_t kLine = 64;
  static constexpr int kRanges = sizeof(StepGemmArgs::pf) / sizeof(PrefetchRange);
  void next_range() {
    for (; range_ < kRanges && a_.pf[range_].bytes <= 0; ++range_) {}
    if (range_ == kRanges) return;
    p_ = static_cast<const char*>(a_.pf[range_].p);
    end_ = p_ + a_.pf[range_].bytes;
  }
  const StepGemmArgs& a_;
  int64_t per_step_ = 0;
  int range_ = 0;
  const char *p_ = nullptr, *end_ = nullptr;
};

// acc[r][q] += A[r][k] w[k][q] over k < K; A[r][k] at a + r lda + k ka; w: Q vectors per k,
// row k at w + k ws. With a prefetcher (PF), each k also issues its share of the prefetches.
template <int R, int Q, bool PF = false>
inline void accumulate(V (&acc)[R][Q], const float* a, int64_t lda, int64_t ka, const float* w,
                       int64_t ws, int64_t K, Prefetcher* pf = nullptr) {
  for (int64_t k = 0; k < K; ++k, w += ws, a += ka) {
    if constexpr (PF) pf->step();
    V wq[Q];
#pragma GCC unroll 4
    for (int q = 0; q < Q; ++q) wq[q] = load_as<V>(w + q * L);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const V s = broadcast(a + r * lda);
#pragma GCC unroll 4
      for (int q = 0; q < Q; ++q) acc[r][q] += s * wq[q];
    }
  }
}

// C rows [r0, r0 + R) (+)= acc, in the first nv < Q L columns of the panel at j0. Out of line:
// inlined into the tile, its partial vectors (load_n, store_n) made GCC 13 keep the AVX2
// tiles' accumulators on the stack through the whole k loop (a load and a store per FMA), and
// the AVX2 LSTM/GRU layers took 1.2-2.1x their former time.
template <int R, int Q>
[[gnu::noinline]] void store_part(const StepGemmArgs& a, const V (&acc)[R][Q], int64_t r0,
                                  int64_t j0, int64_t nv, bool add) {
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < Q; ++q) {
      float* c = a.c + (r0 + r) * a.ldc + j0 + q * L;
      store_n(c, add ? acc[r][q] + load_n(c, nv - q * L) : acc[r][q], nv - q * L);
    }
}

// Rows [r0, r0 + R) by the panel at column j0 (its row k at wp + k ws, Q vectors wide), nv
// valid columns (<= Q L), over the left operand's columns [kb, ke).
template <int R, int Q, bool PF>
void tile(const StepGemmArgs& a, const float* wp, int64_t ws, int64_t r0, int64_t j0, int64_t nv,
          int64_t kb, int64_t ke, Prefetcher* pf) {
  // Each slice sums into zeroed registers and is then added to C, rather than carrying on
  // from C: a weight gradient sums K = every step's rows (tens of thousands), and one running
  // float32 sum per element drifted ~K/2 ulp (4e-4 of the scale against torch.nn's 1e-6, GRU
  // weight gradients over 126 x 181 rows). Now the drift is bounded by a slice's rows plus
  // the number of slices. The cost is an add per accumulator per slice.
  V acc[R][Q] = {};
  const bool add = a.accumulate || kb > 0;
  const int64_t e0 = std::min(ke, a.k0);  // the columns of A0 in [kb, ke), then those of A1
  if (kb < e0)
    accumulate<R, Q, PF>(acc, a.a0 + r0 * a.lda0 + kb * a.ka, a.lda0, a.ka, wp + kb * ws, ws,
                         e0 - kb, pf);
  const int64_t b1 = std::max(kb, a.k0);
  if (b1 < ke)
    accumulate<R, Q, PF>(acc, a.a1 + r0 * a.lda1 + (b1 - a.k0) * a.ka, a.lda1, a.ka,
                         wp + b1 * ws, ws, ke - b1, pf);
  if (nv < Q * L) return store_part<R, Q>(a, acc, r0, j0, nv, add);
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int q = 0; q < Q; ++q) {
      float* c = a.c + (r0 + r) * a.ldc + j0 + q * L;
      store_as(c, add ? acc[r][q] + load_as<V>(c) : acc[r][q]);
    }
}

// Rows per tile: 4 R accumulators, 4 panel vectors and a broadcast in the registers: 3 rows in
// AVX2's 16 (GCC takes the panel vectors as memory operands of the FMAs), 6 in AVX-512's 32.
// (AVX-512, AMD EPYC Zen 5, LSTM layers on one thread against MKL's GEMMs: 4 rows did as well
// as 6, within noise; 8 rows spill and gave 3-7% less.)
constexpr int kRows = L == 8 ? 3 : 6;
// A last panel of at most P / 2 valid columns is packed and run half as wide (2 vectors), in
// tiles of twice the rows: a full-width panel would spend half its FMAs on the zero padding.
// That is the LSTM backward's dh = dG W_hh at hidden <= 2 L (32 in AVX-512) and the GRU's
// 3 H columns at hidden 32 (64 + 32). AVX-512, AMD EPYC Zen 5, batch 64 x hidden 32 x 100
// steps, forward+backward, old / new time (alternating processes, medians): LSTM 1.18x on
// 1 and 2 threads, GRU 1.40x / 1.34x (its forward 1.09x); hidden 64 unchanged.
constexpr int kHalfRows = 2 * kRows;
inline bool half_panel(int64_t nv) { return nv <= P / 2; }
// At most three quarters of the L1 data cache of a panel per pass (24 kB of Zen 3's 32 kB:
// 192 rows of 32 columns; 36 kB of Zen 5's 48 kB: 144 rows of 64): longer panels (the
// backward's K = 4 H, the weight gradients' K = a chunk's rows) are split into equal slices,
// each C tile reloaded for each. AVX2 (AMD EPYC Zen 3), MKL's time over ours for the LSTM
// backward op at hidden 256 (a 128 kB panel): 0.96 unsliced, 1.01-1.06 with slices of 128 or
// 192 rows; the forward at hidden 256 (K = 288) within 5% of MKL's either way, a little closer
// with 192. AVX-512 (Zen 5), forward+backward against 24 kB slices (the rule before; paired
// calls alternating in one process, medians): 32-45 kB took the LSTM 1.4-1.8% less time at
// hidden 64 and 2.3-2.9% less at 128-256 on one thread, 36 kB 2.1-3.4% less at 64-256 on two;
// the GRU 1.7-2.2% less at 128-256 (alternating processes); hidden 32 unchanged within noise.
inline int64_t slice_bytes() {
  static const int64_t bytes = [] {
    const long l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE);  // 0 or -1 where unknown
    return l1 > 0 ? std::clamp<int64_t>(l1 / 4 * 3, 12288, 49152) : int64_t(24576);
  }();
  return bytes;
}

// The rows [r, r + n), n <= R, in one tile of that many.
template <int R, int Q, bool PF>
void rows_tile(const StepGemmArgs& a, const float* wp, int64_t ws, int64_t r, int64_t n,
               int64_t j0, int64_t nv, int64_t kb, int64_t ke, Prefetcher* pf) {
  if constexpr (R > 0) {
    if (n == R) return tile<R, Q, PF>(a, wp, ws, r, j0, nv, kb, ke, pf);
    rows_tile<R - 1, Q, PF>(a, wp, ws, r, n, j0, nv, kb, ke, pf);
  }
}

// How many rows the tiles over m rows take: `rows` each, except that a remainder of at most
// rows / 3 (1-2 in AVX-512, 1 in AVX2, at kRows) is merged with the last full tile and the two
// split evenly: a 1- or 2-row tile spends more on loading the panel than on FMAs. A small
// gain: forward+backward of the LSTM and GRU layers took 0.4-1.6% less time (AVX-512, AMD
// EPYC Zen 5, interleaved; batch 32 and 128 on one thread, 64 on two).
inline int64_t tile_rows(int64_t m, int64_t r, int64_t rows = kRows) {
  const int64_t left = m - r;
  if (left >= 2 * rows || left <= rows) return std::min<int64_t>(left, rows);
  if (left - rows > rows / 3) return rows;
  return (left + 1) / 2;
}

// One panel of Q vectors' width (K rows at wp, packed or ldw apart) in tiles of R rows, for
// each part's rows in turn: every part's tiles go past a slice of the panel while it is in L1.
template <int R, int Q, bool PF>
void panel(const StepGemmArgs* parts, int count, const float* wp, int64_t j0, int64_t nv,
           Prefetcher* pf) {
  const StepGemmArgs& a0 = parts[0];
  const int64_t ws = a0.ldw > 0 ? a0.ldw : Q * L;
  const int64_t K = a0.k0 + a0.k1, max_slice = slice_bytes() / (Q * L * int64_t(sizeof(float)));
  const int64_t slices = (K + max_slice - 1) / max_slice, slice = (K + slices - 1) / slices;
  for (int64_t kb = 0; kb < K; kb += slice) {
    const int64_t ke = std::min(K, kb + slice);
    for (int i = 0; i < count; ++i) {
      const StepGemmArgs& a = parts[i];
      for (int64_t r = 0, n; r < a.m; r += n) {
        n = tile_rows(a.m, r, R);
        if (n == R) tile<R, Q, PF>(a, wp, ws, r, j0, nv, kb, ke, pf);
        else rows_tile<R, Q, PF>(a, wp, ws, r, n, j0, nv, kb, ke, pf);
      }
    }
  }
}

template <bool PF>
void panels(const StepGemmArgs* parts, int count, Prefetcher* pf) {
  const StepGemmArgs& a = parts[0];  // W, n and K are the parts' common ones
  const int64_t K = a.k0 + a.k1;
  for (int64_t j0 = 0; j0 < a.n; j0 += P) {
    // Panel j0 / P (packed, all panels before it are full width), or W's columns from j0.
    const float* wp = a.ldw > 0 ? a.w + j0 : a.w + j0 * K;
    const int64_t nv = std::min(P, a.n - j0);
    if (half_panel(nv)) panel<kHalfRows, 2, PF>(parts, count, wp, j0, nv, pf);
    else panel<kRows, 4, PF>(parts, count, wp, j0, nv, pf);
  }
}

void step_gemm(const StepGemmArgs* parts, int count) {
  // The inner iterations: each panel's tiles of rows (about: tile_rows may merge the last
  // two) run all K columns.
  const int64_t K = parts[0].k0 + parts[0].k1;
  int64_t iterations = 0;
  for (int64_t j0 = 0; j0 < parts[0].n; j0 += P) {
    const int64_t rows = half_panel(parts[0].n - j0) ? kHalfRows : kRows;
    for (int i = 0; i < count; ++i) iterations += (parts[i].m + rows - 1) / rows * K;
  }
  Prefetcher pf(parts[0], iterations);
  if (pf.any()) panels<true>(parts, count, &pf);
  else panels<false>(parts, count, nullptr);
}

}  // namespace step_gemm_kernel
}  // namespace
}  // namespace LIGHTDL_ISA
}  // namespace cpu
}  // namespace lightdl

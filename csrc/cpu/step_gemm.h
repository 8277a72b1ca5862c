// lightdl's own single-precision GEMM for the per-step products of the LSTM/GRU time loops on
// CPU: C (+)= [A0 | A1] W with W (k0 + k1 x N) the same for every step, packed once, and few
// rows (a block of the batch, 8-128). AVX2 hosts and AMD AVX-512 hosts run it in place of
// MKL's packed GEMM (csrc/cpu/packed_gemm.h): at these sizes MKL packs the left operand on
// every call (its sgemm_scopy_down16: 10% of the LSTM forward's time in a profile at batch 32 x
// hidden 128, against 43% in its compute kernel), and on AMD CPUs MKL runs its AVX2 ("zen")
// kernels even where AVX-512 is there. The same kernel computes the layers' weight gradients
// (L^T dG per chunk of steps: the left operand read through a column stride, dG packed per
// chunk, or for the LSTM read in place through a padded row stride, StepGemmArgs::ldw). Gains
// and limits: step_gemm_kernels.h. Intel AVX-512 hosts keep MKL (its 512-bit kernels; ours
// was not measured there). The left operand comes in two parts so that the LSTM
// forward reads x_t and h where they are, instead of copying them side by side every step.
#pragma once

#include <cstdint>

namespace lightdl {
namespace cpu {

// Packed W: column panels of 4 vectors' width (32 columns for AVX2, 64 for AVX-512; the last
// panel padded with zeros, and only 2 vectors wide when at most that many columns are left),
// each stored row by row (k0 + k1 rows of a panel's width).

// A range of memory that step_gemm brings into L2 while it computes (see StepGemmArgs::pf).
struct PrefetchRange {
  const void* p = nullptr;
  int64_t bytes = 0;
};

struct StepGemmArgs {
  const float* w;      // W, packed (step_gemm_pack) or row-major (ldw below)
  const float* a0;     // rows of the left operand's columns [0, k0), at a0 + r lda0
  int64_t lda0, k0;
  const float* a1;     // rows of its columns [k0, k0 + k1), at a1 + r lda1 (k1 may be 0)
  int64_t lda1, k1;
  float* c;            // rows of C at c + r ldc
  int64_t ldc;
  int64_t m, n;        // rows, and columns of C
  bool accumulate;     // C += ... rather than C = ...
  int64_t ka = 1;      // the left operand's column stride (lda is its row stride)
  // Memory the caller reads next, brought into L2 a cache line at a time, spread over the
  // product's inner iterations (its FMAs hide the misses): the backward loops' next step.
  PrefetchRange pf[3] = {};
  // 0: w is packed (step_gemm_pack). Else w is W itself, row-major with this row stride, which
  // must leave room for whole panels: at least n rounded up to the panel width (the columns
  // past n are read into lanes that are never stored). See step_gemm_row_stride.
  int64_t ldw = 0;
};

// Whether step_gemm runs on this host (the instruction set chosen is AVX2, or AVX-512 on a
// CPU other than Intel's) and is wanted: LIGHTDL_RNN_CPU_GEMM=mkl selects MKL's GEMMs instead
// (read on every call).
bool step_gemm_available();
int64_t step_gemm_packed_size(int64_t k, int64_t n);
// Packs W (k x n), element (i, j) at src[i * s_row + j * s_col], into `out`.
void step_gemm_pack(const float* src, int64_t s_row, int64_t s_col, int64_t k, int64_t n,
                    float* out);
void step_gemm(const StepGemmArgs& a);
// C (+)= A W for several parts of A's and C's rows, each part a StepGemmArgs of its own (a0,
// a1, their strides, c and m) with the same W (w, ldw, n, k0 + k1): in one pass over W, each
// slice of a panel serving every part's rows while it is in L1 (the weight gradients' rows of
// x, h and the bias, read from different places; as separate calls each part took a pass of
// W through L1 of its own).
void step_gemm(const StepGemmArgs* parts, int count);
// A row stride for a W (k x n) that step_gemm reads unpacked (StepGemmArgs::ldw): n rounded up
// to whole panels, plus one cache line, so that successive rows of a panel fall in different
// L1 sets (with a stride of a multiple of 4 kB, 12 rows would fill all the ways of the sets a
// panel slice maps to).
int64_t step_gemm_row_stride(int64_t n);

}  // namespace cpu
}  // namespace lightdl

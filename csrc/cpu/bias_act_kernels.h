// Inner loops of the CPU bias+activation kernels, over raw float/double pointers.
//
// This header is compiled once per instruction set (csrc/cpu/isa_*.cpp set the target with a
// pragma and the namespace with LIGHTDL_ISA) and holds no torch code, so the compiler is free
// to vectorise every loop for that instruction set. csrc/cpu/bias_act.cpp picks the table of
// the best instruction set the CPU supports at load time, the way ATen's CPU_CAPABILITY does.
#pragma once

#include <cstdint>

#include "../activations.h"
#include "bias_act_table.h"

#ifndef LIGHTDL_ISA
#error "define LIGHTDL_ISA before including bias_act_kernels.h"
#endif

namespace lightdl {
namespace cpu {
namespace LIGHTDL_ISA {
namespace {

// y[i] = act(x[i] + b), one plane with a scalar bias.
template <Act A, typename T>
void fwd_plane(const T* __restrict x, T* __restrict y, int64_t n, T b, T alpha) {
  for (int64_t i = 0; i < n; ++i) y[i] = ActMath<A>::fwd(x[i] + b, alpha);
}

// y[r, c] = act(x[r, c] + b[c]) for `rows` contiguous rows of length C.
template <Act A, typename T>
void fwd_rows(const T* __restrict x, const T* __restrict b, T* __restrict y, int64_t rows,
              int64_t C, T alpha) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    for (int64_t c = 0; c < C; ++c) yr[c] = ActMath<A>::fwd(xr[c] + b[c], alpha);
  }
}

// gx[i] = g[i] * act'(x[i] + b); returns sum(gx). Works in L1-sized chunks: the first loop
// is the same simple elementwise loop as the forward (so it vectorises for every act), the
// second sums the chunk it just wrote, still in L1, into kLanes independent partial sums
// (vectorisable without reassociating one float sum). grad_bias thus costs no extra pass
// over memory.
template <Act A, typename T>
T bwd_plane(const T* __restrict g, const T* __restrict x, T* __restrict gx, int64_t n, T b,
            T alpha) {
  constexpr int64_t kChunk = 2048;
  constexpr int kLanes = 16;
  T lanes[kLanes] = {};
  T total = T(0);
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t len = n - i0 < kChunk ? n - i0 : kChunk;
    const T* gc = g + i0;
    const T* xc = x + i0;
    T* out = gx + i0;
    for (int64_t i = 0; i < len; ++i)
      out[i] = gc[i] * ActMath<A>::grad(grad_arg<A>(xc[i], b), alpha);
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes)
      for (int k = 0; k < kLanes; ++k) lanes[k] += out[i + k];
    for (; i < len; ++i) total += out[i];
  }
  for (int k = 0; k < kLanes; ++k) total += lanes[k];
  return total;
}

// gx[r, c] = g[r, c] * act'(x[r, c] + b[c]); acc[c] += sum over the rows of gx[:, c].
// Two simple loops per row (the second re-reads the row it just wrote, from L1) vectorise
// better than one loop that also read-modify-writes acc.
template <Act A, typename T>
void bwd_rows(const T* __restrict g, const T* __restrict x, const T* __restrict b,
              T* __restrict gx, T* __restrict acc, int64_t rows, int64_t C, T alpha) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* gr = g + r * C;
    const T* xr = x + r * C;
    T* out = gx + r * C;
    for (int64_t c = 0; c < C; ++c)
      out[c] = gr[c] * ActMath<A>::grad(grad_arg<A>(xr[c], b[c]), alpha);
    for (int64_t c = 0; c < C; ++c) acc[c] += out[c];
  }
}

template <typename T>
BiasActTable<T> make_table() {
  BiasActTable<T> t{};
#define LIGHTDL_FILL(NAME)                                           \
  t.fwd_plane[static_cast<int>(Act::NAME)] = &fwd_plane<Act::NAME, T>; \
  t.fwd_rows[static_cast<int>(Act::NAME)] = &fwd_rows<Act::NAME, T>;   \
  t.bwd_plane[static_cast<int>(Act::NAME)] = &bwd_plane<Act::NAME, T>; \
  t.bwd_rows[static_cast<int>(Act::NAME)] = &bwd_rows<Act::NAME, T>;
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
  LIGHTDL_FILL(SigmoidFromOutput)
  LIGHTDL_FILL(TanhFromOutput)
  LIGHTDL_FILL(ReLUFromOutput)
  LIGHTDL_FILL(LeakyReLUFromOutput)
#undef LIGHTDL_FILL
  return t;
}

}  // namespace

const BiasActTable<float>& table_f32() {
  static const BiasActTable<float> t = make_table<float>();
  return t;
}
const BiasActTable<double>& table_f64() {
  static const BiasActTable<double> t = make_table<double>();
  return t;
}

}  // namespace LIGHTDL_ISA
}  // namespace cpu
}  // namespace lightdl

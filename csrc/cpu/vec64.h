// GCC vectors (VecN: N bytes, the ISA's register width) for CPU loops written lane-parallel by
// hand, where GCC's auto-vectoriser does worse:
// - the direct conv1d kernels keep their tiles and reductions in them (conv1d_kernels.h: as
//   plain arrays the accumulators lived on the stack, and zeroing them per tile took a fifth
//   of the forward's time; the reductions ran 4-7x slower);
// - the LSTM forward gate step (rnn_rows_kernels.h) ran 1.2-1.35x faster written in them
//   than as the same scalar math left to the vectoriser (kernel harness, AVX-512, per step:
//   batch 32 x hidden 128 20.4 -> 15.4 us, 64 x 32 12.0 -> 8.9 us, 128 x 256 166 -> 139 us;
//   the backward step, with no exp and fewer constants, gained nothing and stays scalar). The
//   AVX2 build writes it in 32-byte vectors (VecN below): the whole forward op took less
//   time than with the scalar math (1-15%) on the benchmark shapes (AMD EPYC, 1 and 2 threads,
//   interleaved in one process), where 64-byte vectors, split in two by the compiler and
//   spilled (16 registers), took 1.3-1.8x more.
// - the batch-norm statistics and gradient sums of bn_act_pool1d (bn_kernels.h).
// Makes fm::exp_lanes / fm::tanh_parts (csrc/fastmath.h) work on float vectors. Included by
// headers compiled once per ISA; everything has internal linkage.
#pragma once

#include <cstdint>
#include <cstring>

#include "../fastmath.h"

// GCC notes that passing vectors wider than the target's registers by value changes the ABI;
// these functions have internal linkage and are inlined, so no ABI is involved.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace lightdl {
namespace {

// N-byte vectors: 64 is one AVX-512 register, 32 one AVX2 register, 16 one SSE2 register.
template <typename T, int N>
struct VecN {
  typedef T type __attribute__((vector_size(N)));
};

template <typename V, typename T>
inline V load_as(const T* p) {  // unaligned
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T, typename V>
inline void store_as(T* p, const V& v) {  // unaligned
  std::memcpy(p, &v, sizeof(v));
}

namespace fm {
template <int N>
struct FloatLanes {
  using F = typename VecN<float, N>::type;
  using Int = typename VecN<int32_t, N>::type;
  static Int to_int(F x) { return __builtin_convertvector(x, Int); }  // truncates
  static F to_float(Int n) { return __builtin_convertvector(n, F); }
  static F from_bits(Int i) {
    F f;
    std::memcpy(&f, &i, sizeof f);
    return f;
  }
};
template <>
struct Lanes<VecN<float, 64>::type> : FloatLanes<64> {};
template <>
struct Lanes<VecN<float, 32>::type> : FloatLanes<32> {};
}  // namespace fm

}  // namespace
}  // namespace lightdl

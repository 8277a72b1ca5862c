// 64-byte GCC vectors (16 floats or 8 doubles: one AVX-512 register, two AVX2 ones, four SSE
// ones) for CPU loops written lane-parallel by hand, where GCC's auto-vectoriser does worse:
// - the direct conv1d kernels keep their tiles and reductions in them (conv1d_kernels.h: as
//   plain arrays the accumulators lived on the stack, and zeroing them per tile took a fifth
//   of the forward's time; the reductions ran 4-7x slower);
// - the LSTM forward gate step (rnn_rows_kernels.h) ran 1.2-1.35x faster written in them
//   than as the same scalar math left to the vectoriser (kernel harness, AVX-512, per step:
//   batch 32 x hidden 128 20.4 -> 15.4 us, 64 x 32 12.0 -> 8.9 us, 128 x 256 166 -> 139 us;
//   the backward step, with no exp and fewer constants, gained nothing and stays scalar).
// Makes fm::exp_lanes / fm::tanh_parts (csrc/fastmath.h) work on float vectors. Included by
// headers compiled once per ISA; everything has internal linkage.
#pragma once

#include <cstdint>
#include <cstring>

#include "../fastmath.h"

// GCC notes that passing 64-byte vectors by value changes the ABI without AVX-512; these
// functions have internal linkage and are inlined, so no ABI is involved.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace lightdl {
namespace {

template <typename T>
struct Vec64 {
  typedef T type __attribute__((vector_size(64)));
};
template <typename T>
constexpr int kVL = 64 / static_cast<int>(sizeof(T));  // lanes per vector

template <typename T>
inline typename Vec64<T>::type load_vec(const T* p) {  // unaligned
  typename Vec64<T>::type v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
inline void store_vec(T* p, const typename Vec64<T>::type& v) {  // unaligned
  std::memcpy(p, &v, sizeof(v));
}

namespace fm {
template <>
struct Lanes<Vec64<float>::type> {
  using F = Vec64<float>::type;
  using Int = Vec64<int32_t>::type;
  static Int to_int(F x) { return __builtin_convertvector(x, Int); }  // truncates
  static F to_float(Int n) { return __builtin_convertvector(n, F); }
  static F from_bits(Int i) {
    F f;
    std::memcpy(&f, &i, sizeof f);
    return f;
  }
};
}  // namespace fm

}  // namespace
}  // namespace lightdl

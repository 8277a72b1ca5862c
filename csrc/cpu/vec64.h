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
#ifdef LIGHTDL_VEC64_AVX512
#include <immintrin.h>
#endif

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

#ifdef LIGHTDL_VEC64_AVX512
// AVX-512 (defined by the AVX-512 build of the RNN kernels, rnn_isa_avx512.cpp): exp's
// rounding and its 2^n scaling are one instruction each (vrndscaleps, vscalefps) in place of
// the generic version's compare/blend rounding and exponent-field arithmetic, and the clamps
// are min/max (written min(c, x) so that a NaN x stays NaN, as the generic selects leave it);
// the same polynomial (bitwise the same LSTM outputs on a 50-step test). The LSTM layer's
// forward (inference) took 1.15x less time at batch 64 x hidden 32, 1.12x at 64 x 64, 1.03x at
// 128 x 256 (AMD EPYC Zen 5, one thread, alternating processes, medians).
using F64 = VecN<float, 64>::type;
constexpr __mmask16 kAll = 0xffff;  // the maskz forms: the unmasked ones trip -Wmaybe-uninitialized

template <>
inline F64 clamp_sym(F64 x, float c) {
  const __m512 v = _mm512_maskz_min_ps(kAll, _mm512_set1_ps(c), reinterpret_cast<__m512>(x));
  return reinterpret_cast<F64>(_mm512_maskz_max_ps(kAll, _mm512_set1_ps(-c), v));
}

template <>
inline F64 exp_lanes(F64 x) {
  // The lower clamp stays: it keeps n small enough for x - n ln2 to be exact (x = -1e29 would
  // leave a huge r, and exp(r) 2^n = inf * 0 = NaN).
  const __m512 v = _mm512_maskz_max_ps(
      kAll, _mm512_set1_ps(-87.3365447505531f),
      _mm512_maskz_min_ps(kAll, _mm512_set1_ps(88.f), reinterpret_cast<__m512>(x)));
  const __m512 n = _mm512_maskz_roundscale_ps(
      kAll, _mm512_mul_ps(v, _mm512_set1_ps(1.44269504088896341f)),
      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), v);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  const __m512 p = reinterpret_cast<__m512>(exp_poly(reinterpret_cast<F64>(r)));
  return reinterpret_cast<F64>(_mm512_maskz_scalef_ps(kAll, p, n));
}
#endif
}  // namespace fm

}  // namespace
}  // namespace lightdl

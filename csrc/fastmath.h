// Elementary functions for the activation math, written so that one definition serves the
// CPU and the CUDA kernels.
//
// On the GPU they map to CUDA's own functions. On the CPU, glibc's scalar expf/erff/tanhf
// would stop GCC from vectorising the elementwise loops (a call per element is ~20x slower
// than the memory traffic of a bias+activation pass), so the float versions here are
// branch-free polynomial and rational approximations (<= 2 ulp for exp, <= 4.3e-7 relative
// for erf and tanh) that auto-vectorise at -O3. Doubles use <cmath>: float64
// is the gradcheck/test dtype, where exactness matters more than speed.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define LIGHTDL_HD __host__ __device__ __forceinline__
#else
#define LIGHTDL_HD inline __attribute__((always_inline))
#endif

// An unnamed namespace gives every translation unit its own copy: the CPU kernels are compiled
// once per instruction set (see csrc/cpu/isa_*.cpp), and those copies must never be merged by
// the linker.
namespace lightdl {
namespace {
namespace fm {

#if defined(__CUDA_ARCH__)
LIGHTDL_HD float exp(float x) { return ::expf(x); }
LIGHTDL_HD float erf(float x) { return ::erff(x); }
LIGHTDL_HD float tanh(float x) { return ::tanhf(x); }
#else
LIGHTDL_HD float bits_to_float(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

// exp and tanh_parts are written once for a lane type F: float, or a GCC vector of floats
// for the CPU kernels that vectorise by hand (csrc/cpu/vec64.h, which specialises Lanes for
// it): the same constants and operations, lane by lane. Lanes<F> holds the few operations
// spelled differently for vectors; splat(c) is c in every lane.
template <typename F>
struct Lanes;

template <>
struct Lanes<float> {
  using Int = int32_t;
  static LIGHTDL_HD Int to_int(float x) { return static_cast<int32_t>(x); }  // truncates
  static LIGHTDL_HD float to_float(Int n) { return static_cast<float>(n); }
  static LIGHTDL_HD float from_bits(Int i) { return bits_to_float(i); }
};

template <typename F>
LIGHTDL_HD F splat(float c) {
  return F{} + c;
}

constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;

// exp(r) for |r| <= ln2/2: the Cephes expf polynomial.
template <typename F>
LIGHTDL_HD F exp_poly(F r) {
  const F r2 = r * r;
  F p = splat<F>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r2 + r + 1.0f;
}

// exp(x) = 2^n * exp(r), n = round(x / ln2), |r| <= ln2/2.
template <typename F>
LIGHTDL_HD F exp_lanes(F x) {
  using L = Lanes<F>;
  // Clamped so that 2^n stays a normal float; exp(88) ~ 1.7e38 stands in for overflow, which
  // only ever meets a division (sigmoid, tanh), where the result is the same.
  x = x > 88.f ? splat<F>(88.f) : x;
  x = x < -87.3365447505531f ? splat<F>(-87.3365447505531f) : x;
  const F fn = x * 1.44269504088896341f + (x >= 0.f ? splat<F>(0.5f) : splat<F>(-0.5f));
  const typename L::Int n = L::to_int(fn);  // truncation of x/ln2 +- 0.5 = round
  const F nf = L::to_float(n);
  F r = x - nf * kLn2Hi;  // ln2 split in two for an exact product
  r = r - nf * kLn2Lo;
  // n is in [-126, 127] after the clamps above, so the exponent field never wraps.
  return exp_poly(r) * L::from_bits((n + 127) << 23);
}

LIGHTDL_HD float exp(float x) { return exp_lanes(x); }

// x clamped to [-c, c]; a NaN stays NaN.
template <typename F>
LIGHTDL_HD F clamp_sym(F x, float c) {
  x = x > c ? splat<F>(c) : x;
  return x < -c ? splat<F>(-c) : x;
}

// tanh and erf: odd/even rational minimax fits on a clamped range (the ones Eigen and XLA use
// for float); one division, no exp, <= 4.3e-7 relative error over all floats (checked
// against float64 in tests/test_bias_act.py).
// tanh(x) = num / den with den > 0, for callers that share one division among several
// quotients (the LSTM/GRU gates, csrc/rnn_math.h).
constexpr float kTanhClamp = 7.90531110763549805f;  // tanh_parts' num / den is +-1 from here

template <typename F>
LIGHTDL_HD void tanh_parts(F x, F& num, F& den) {
  x = clamp_sym(x, kTanhClamp);
  const F z = x * x;
  F p = splat<F>(-2.76076847742355e-16f);
  p = p * z + 2.00018790482477e-13f;
  p = p * z - 8.60467152213735e-11f;
  p = p * z + 5.12229709037114e-08f;
  p = p * z + 1.48572235717979e-05f;
  p = p * z + 6.37261928875436e-04f;
  p = p * z + 4.89352455891786e-03f;
  F q = splat<F>(1.19825839466702e-06f);
  q = q * z + 1.18534705686654e-04f;
  q = q * z + 2.26843463243900e-03f;
  q = q * z + 4.89352518554385e-03f;
  num = x * p;
  den = q;
}

LIGHTDL_HD float tanh(float x) {
  float num, den;
  tanh_parts(x, num, den);
  return num / den;
}

// v, an approximation of tanh(x) by other means than num / den (the LSTM's shared division),
// set to exactly +-1 where tanh(x) is: from the clamp on, as tanh above.
template <typename F>
LIGHTDL_HD F tanh_saturated(F x, F v) {
  v = x >= kTanhClamp ? splat<F>(1.f) : v;
  return x <= -kTanhClamp ? splat<F>(-1.f) : v;
}

LIGHTDL_HD float erf(float x) {
  x = x > 4.f ? 4.f : x;  // erf is +-1 in float beyond
  x = x < -4.f ? -4.f : x;
  const float z = x * x;
  float p = -2.72614225801306e-10f;
  p = p * z + 2.77068142495902e-08f;
  p = p * z - 2.10102402082508e-06f;
  p = p * z - 5.69250639462346e-05f;
  p = p * z - 7.34990630326855e-04f;
  p = p * z - 2.95459980854025e-03f;
  p = p * z - 1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * z - 2.13374055278905e-04f;
  q = q * z - 1.68282697438203e-03f;
  q = q * z - 7.37332916720468e-03f;
  q = q * z - 1.42647390514189e-02f;
  return x * p / q;
}
#endif  // __CUDA_ARCH__

LIGHTDL_HD double exp(double x) { return std::exp(x); }
LIGHTDL_HD double erf(double x) { return std::erf(x); }
LIGHTDL_HD double tanh(double x) { return std::tanh(x); }

}  // namespace fm
}  // namespace
}  // namespace lightdl

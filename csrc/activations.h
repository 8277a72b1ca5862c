// Forward and derivative math of every lightdl activation, shared by the CPU kernels
// (csrc/cpu) and the CUDA kernels (csrc/cuda). `T` is the compute type: float for
// float/half/bfloat16 tensors, double for double.
//
// Each activation is a struct with two static functions so that kernels can be instantiated
// per activation (the act is a compile-time constant inside the hot loop, which is what lets
// the compiler vectorise it) via LIGHTDL_DISPATCH_ACT.
#pragma once

#include "fastmath.h"

namespace lightdl {

// Order and names match lightdl/ops/_acts.py (ACTIVATIONS); the Python side passes the name.
enum class Act : int {
  Identity = 0,
  ReLU,
  LeakyReLU,
  Sigmoid,
  Tanh,
  GELU,
  GELUTanh,
  SiLU,
  Step,
  Sign,
  // Backward-only variants whose kernels receive the forward *output* y instead of the input:
  // sigmoid' = y (1 - y) and tanh' = 1 - y^2 need no exp or division, which is what makes
  // these backward passes compute-bound otherwise. Their absolute error is a few eps (as in
  // PyTorch's own kernels, which work the same way).
  SigmoidFromOutput,
  TanhFromOutput,
  // relu' and leaky_relu' (slope >= 0) read the same from the output as from the input (the
  // output is > 0 exactly where the input is): saving the output lets a forward apply them in
  // place, with no second buffer.
  ReLUFromOutput,
  LeakyReLUFromOutput,
};

namespace {

template <Act A>
struct ActMath;

// Whether ActMath<A>::grad takes the forward output (and so no bias is added to its argument).
template <Act A>
constexpr bool kGradFromOutput = A == Act::SigmoidFromOutput || A == Act::TanhFromOutput ||
                                 A == Act::ReLUFromOutput || A == Act::LeakyReLUFromOutput;


template <>
struct ActMath<Act::Identity> {
  template <typename T> static LIGHTDL_HD T fwd(T x, T) { return x; }
  template <typename T> static LIGHTDL_HD T grad(T, T) { return T(1); }
};

// `x < 0 ? 0 : x` rather than `x > 0 ? x : 0` so NaN propagates as in torch.relu.
template <>
struct ActMath<Act::ReLU> {
  template <typename T> static LIGHTDL_HD T fwd(T x, T) { return x < T(0) ? T(0) : x; }
  // Derivative at 0 is 0, as in PyTorch's threshold_backward.
  template <typename T> static LIGHTDL_HD T grad(T x, T) { return x > T(0) ? T(1) : T(0); }
};

template <>
struct ActMath<Act::LeakyReLU> {
  template <typename T> static LIGHTDL_HD T fwd(T x, T a) { return x > T(0) ? x : x * a; }
  template <typename T> static LIGHTDL_HD T grad(T x, T a) { return x > T(0) ? T(1) : a; }
};

// The derivatives below avoid 1 - s and 1 - t*t, which cancel to 0 in float long before the
// true derivative underflows: with e = exp(-|x|), sigmoid'(x) = e / (1 + e)^2 and
// tanh'(x) = sech^2(x) = 4e' / (1 + e')^2 with e' = exp(-2|x|).
template <typename T>
LIGHTDL_HD T sech2(T x) {
  const T e = fm::exp(T(-2) * (x < T(0) ? -x : x));
  const T d = T(1) + e;
  return T(4) * e / (d * d);
}

template <>
struct ActMath<Act::Sigmoid> {
  template <typename T> static LIGHTDL_HD T fwd(T x, T) { return T(1) / (T(1) + fm::exp(-x)); }
  template <typename T> static LIGHTDL_HD T grad(T x, T) {
    const T e = fm::exp(x < T(0) ? x : -x);
    const T d = T(1) + e;
    return e / (d * d);
  }
};

template <>
struct ActMath<Act::Tanh> {
  template <typename T> static LIGHTDL_HD T fwd(T x, T) { return fm::tanh(x); }
  template <typename T> static LIGHTDL_HD T grad(T x, T) { return sech2(x); }
};

// The argument of ActMath<A>::grad: x + bias, or the forward output itself.
template <Act A, typename T>
LIGHTDL_HD T grad_arg(T x, T bias) {
  return kGradFromOutput<A> ? x : x + bias;
}

template <>
struct ActMath<Act::SigmoidFromOutput> {
  template <typename T> static LIGHTDL_HD T fwd(T y, T) { return y; }  // never used
  template <typename T> static LIGHTDL_HD T grad(T y, T) { return y * (T(1) - y); }
};

template <>
struct ActMath<Act::TanhFromOutput> {
  template <typename T> static LIGHTDL_HD T fwd(T y, T) { return y; }  // never used
  template <typename T> static LIGHTDL_HD T grad(T y, T) { return T(1) - y * y; }
};

template <>
struct ActMath<Act::ReLUFromOutput> {
  template <typename T> static LIGHTDL_HD T fwd(T y, T) { return y; }  // never used
  template <typename T> static LIGHTDL_HD T grad(T y, T) { return y > T(0) ? T(1) : T(0); }
};

template <>
struct ActMath<Act::LeakyReLUFromOutput> {  // slope a >= 0 (checked by from_output)
  template <typename T> static LIGHTDL_HD T fwd(T y, T) { return y; }  // never used
  template <typename T> static LIGHTDL_HD T grad(T y, T a) { return y > T(0) ? T(1) : a; }
};

// GELU, erf form: x * Phi(x), Phi the standard normal CDF.
template <>
struct ActMath<Act::GELU> {
  template <typename T> static LIGHTDL_HD T fwd(T x, T) {
    return T(0.5) * x * (T(1) + fm::erf(x * T(0.70710678118654752440)));
  }
  template <typename T> static LIGHTDL_HD T grad(T x, T) {
    T cdf = T(0.5) * (T(1) + fm::erf(x * T(0.70710678118654752440)));
    T pdf = T(0.39894228040143267794) * fm::exp(T(-0.5) * x * x);
    return cdf + x * pdf;
  }
};

// GELU, tanh approximation (F.gelu(x, approximate="tanh")).
template <>
struct ActMath<Act::GELUTanh> {
  template <typename T> static LIGHTDL_HD T fwd(T x, T) {
    T inner = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
    return T(0.5) * x * (T(1) + fm::tanh(inner));
  }
  template <typename T> static LIGHTDL_HD T grad(T x, T) {
    T x2 = x * x;
    T inner = T(0.79788456080286535588) * (x + T(0.044715) * x2 * x);
    T t = fm::tanh(inner);
    T dinner = T(0.79788456080286535588) * (T(1) + T(3) * T(0.044715) * x2);
    return T(0.5) * (T(1) + t) + T(0.5) * x * sech2(inner) * dinner;
  }
};

template <>
struct ActMath<Act::SiLU> {
  template <typename T> static LIGHTDL_HD T fwd(T x, T) { return x / (T(1) + fm::exp(-x)); }
  // s * (1 + x * (1 - s)) with 1 - s = sigmoid(-x) computed without cancellation.
  template <typename T> static LIGHTDL_HD T grad(T x, T) {
    const T e = fm::exp(x < T(0) ? x : -x);
    const T inv = T(1) / (T(1) + e);
    const T s = x < T(0) ? e * inv : inv;
    const T s_neg = x < T(0) ? inv : e * inv;
    return s * (T(1) + x * s_neg);
  }
};

// Heaviside step with step(0) = 1 (Rosenblatt's perceptron fires at a zero net input).
// Step and sign are for the perceptron's forward pass; their derivative is taken as 0
// everywhere (as autograd does for torch.sign), so gradient-based training through them
// does nothing, which is the point the course makes.
template <>
struct ActMath<Act::Step> {
  template <typename T> static LIGHTDL_HD T fwd(T x, T) { return x >= T(0) ? T(1) : T(0); }
  template <typename T> static LIGHTDL_HD T grad(T, T) { return T(0); }
};

template <>
struct ActMath<Act::Sign> {
  template <typename T> static LIGHTDL_HD T fwd(T x, T) {
    return x > T(0) ? T(1) : (x < T(0) ? T(-1) : x);  // keeps 0 (and NaN) like torch.sign
  }
  template <typename T> static LIGHTDL_HD T grad(T, T) { return T(0); }
};

}  // namespace
}  // namespace lightdl

// (TORCH_CHECK: users of the macro include c10/util/Exception.h.)
// Runs `__VA_ARGS__` with `constexpr lightdl::Act ACT` bound to the runtime value `act`.
#define LIGHTDL_ACT_CASE(NAME, ...)                       \
  case ::lightdl::Act::NAME: {                            \
    constexpr ::lightdl::Act ACT = ::lightdl::Act::NAME;  \
    __VA_ARGS__();                                        \
    break;                                                \
  }

#define LIGHTDL_DISPATCH_ACT(act, ...)                    \
  switch (act) {                                          \
    LIGHTDL_ACT_CASES(__VA_ARGS__)                        \
    default:                                              \
      TORCH_CHECK(false, "lightdl: invalid activation id ", static_cast<int>(act)); \
  }

// The same, plus the backward-only *FromOutput variants.
#define LIGHTDL_DISPATCH_ACT_BACKWARD(act, ...)           \
  switch (act) {                                          \
    LIGHTDL_ACT_CASES(__VA_ARGS__)                        \
    LIGHTDL_ACT_CASE(SigmoidFromOutput, __VA_ARGS__)      \
    LIGHTDL_ACT_CASE(TanhFromOutput, __VA_ARGS__)         \
    LIGHTDL_ACT_CASE(ReLUFromOutput, __VA_ARGS__)         \
    LIGHTDL_ACT_CASE(LeakyReLUFromOutput, __VA_ARGS__)    \
    default:                                              \
      TORCH_CHECK(false, "lightdl: invalid activation id ", static_cast<int>(act)); \
  }

#define LIGHTDL_ACT_CASES(...)                            \
    LIGHTDL_ACT_CASE(Identity, __VA_ARGS__)               \
    LIGHTDL_ACT_CASE(ReLU, __VA_ARGS__)                   \
    LIGHTDL_ACT_CASE(LeakyReLU, __VA_ARGS__)              \
    LIGHTDL_ACT_CASE(Sigmoid, __VA_ARGS__)                \
    LIGHTDL_ACT_CASE(Tanh, __VA_ARGS__)                   \
    LIGHTDL_ACT_CASE(GELU, __VA_ARGS__)                   \
    LIGHTDL_ACT_CASE(GELUTanh, __VA_ARGS__)               \
    LIGHTDL_ACT_CASE(SiLU, __VA_ARGS__)                   \
    LIGHTDL_ACT_CASE(Step, __VA_ARGS__)                   \
    LIGHTDL_ACT_CASE(Sign, __VA_ARGS__)

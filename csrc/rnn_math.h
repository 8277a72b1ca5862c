// Pointwise math of one LSTM / GRU time step, forward and backward, per hidden unit. Shared by
// the CPU kernels (csrc/cpu/rnn.cpp) and the CUDA kernels (csrc/cuda/rnn.cu); `T` is the
// compute type (float for float/half/bfloat16 tensors, double for double).
//
// Gate orders are torch.nn's: LSTM (i, f, g, o), GRU (r, z, n). Everything the backward needs
// is the forward's post-activation gates (sigmoid' = s(1-s), tanh' = 1-t^2 from the outputs,
// no exp) plus the cell state (LSTM) or the previous hidden state (GRU).
#pragma once

#include "activations.h"

namespace lightdl {
namespace {
namespace rnn_math {

template <typename T>
LIGHTDL_HD T sigmoid(T x) {
  return ActMath<Act::Sigmoid>::fwd(x, T(0));
}

template <typename T>
LIGHTDL_HD T tanh(T x) {
  return fm::tanh(x);
}

// LSTM forward. In: the gate pre-activations (x W_ih^T + b_ih + h W_hh^T + b_hh) in i, f, g,
// o and the previous cell state. Out: i, f, g, o replaced by their activations, the new cell
// and hidden states:  c' = f c + i g,  h' = o tanh(c').
template <typename T>
LIGHTDL_HD void lstm_fwd(T& i, T& f, T& g, T& o, T c_prev, T& c_new, T& h_new) {
  i = sigmoid(i);
  f = sigmoid(f);
  g = tanh(g);
  o = sigmoid(o);
  c_new = f * c_prev + i * g;
  h_new = o * tanh(c_new);
}

// LSTM backward. In: post-activation gates, the cell states before (c_prev) and after (c) the
// step, dh = dL/dh' (all paths), dc = dL/dc' (from the next step). Out: the gradients of the
// four gate pre-activations, and dc replaced by dL/dc_prev. (dL/dh_prev is d_gates W_hh, a
// GEMM done by the caller.)
template <typename T>
LIGHTDL_HD void lstm_bwd(T i, T f, T g, T o, T c_prev, T c, T dh, T& dc, T& di, T& df, T& dg,
                         T& d_o) {
  const T tc = tanh(c);
  const T dct = dc + dh * o * (T(1) - tc * tc);
  d_o = dh * tc * o * (T(1) - o);
  di = dct * g * i * (T(1) - i);
  df = dct * c_prev * f * (T(1) - f);
  dg = dct * i * (T(1) - g * g);
  dc = dct * f;
}

// GRU forward (nn.GRUCell): xr, xz, xn = x W_ih^T + b_ih; hr, hz, hn = h W_hh^T + b_hh;
//   r = s(xr + hr), z = s(xz + hz), n = tanh(xn + r hn), h' = (1 - z) n + z h.
template <typename T>
LIGHTDL_HD void gru_fwd(T xr, T xz, T xn, T hr, T hz, T hn, T h_prev, T& r, T& z, T& n,
                        T& h_new) {
  r = sigmoid(xr + hr);
  z = sigmoid(xz + hz);
  n = tanh(xn + r * hn);
  h_new = n + z * (h_prev - n);
}

// GRU backward. In: r, z, n, hn (the recurrent n pre-activation including b_hn), h_prev, and
// dh = dL/dh'. Out: the gradients of the input-side pre-activations (dxr, dxz, dxn), of the
// hidden-side ones (dhr = dxr, dhz = dxz, dhn), and the direct part of dL/dh_prev (z dh;
// the caller adds d_hidden W_hh).
template <typename T>
LIGHTDL_HD void gru_bwd(T r, T z, T n, T hn, T h_prev, T dh, T& dxr, T& dxz, T& dxn, T& dhn,
                        T& dh_prev) {
  const T dn = dh * (T(1) - z) * (T(1) - n * n);
  dxz = dh * (h_prev - n) * z * (T(1) - z);
  dxr = dn * hn * r * (T(1) - r);
  dxn = dn;
  dhn = dn * r;
  dh_prev = dh * z;
}

#if !defined(__CUDACC__)
// Float versions of lstm_fwd / gru_fwd for the CPU kernels, where the divisions of sigmoid
// and tanh are the bottleneck of the vectorised step (a 16-lane division costs as much as a
// dozen FMAs): 1/a, 1/b, 1/c and 1/d are taken from one reciprocal of a*b*c*d. The sigmoid
// arguments are clamped to >= -29 so that the product stays finite (sigmoid(-29) = 2.5e-13,
// an absolute error far below float's resolution at the gates' scale); the result is within
// a few ulp of the separate divisions.
// F: float, or a GCC vector of floats (csrc/cpu/vec64.h; see fm::Lanes).
template <typename F>
LIGHTDL_HD F sigmoid_den(F x) {
  return 1.f + fm::exp_lanes(x < -29.f ? fm::splat<F>(29.f) : -x);
}

template <typename F>
LIGHTDL_HD void lstm_fwd_lanes(F& i, F& f, F& g, F& o, F c_prev, F& c_new, F& h_new) {
  const F ai = sigmoid_den(i), af = sigmoid_den(f), ao = sigmoid_den(o), g_in = g;
  F pg, qg;
  fm::tanh_parts(g, pg, qg);
  const F a_if = ai * af, a_oq = ao * qg;
  const F r = 1.f / (a_if * a_oq);
  i = af * a_oq * r;
  f = ai * a_oq * r;
  o = a_if * qg * r;
  // Saturated, g is exactly +-1 as fm::tanh is: the shared division leaves it a few ulp off,
  // and the backward's 1 - g^2 then read ~2e-7 instead of 0, which inputs of ~40 turned into
  // weight gradients 5e-5 away from torch.nn's exact zeros.
  g = fm::tanh_saturated(g_in, pg * a_if * ao * r);
  c_new = f * c_prev + i * g;
  F pc, qc;
  fm::tanh_parts(c_new, pc, qc);
  h_new = o * (pc / qc);
}

LIGHTDL_HD void lstm_fwd_cpu(float& i, float& f, float& g, float& o, float c_prev, float& c_new,
                             float& h_new) {
  lstm_fwd_lanes(i, f, g, o, c_prev, c_new, h_new);
}

LIGHTDL_HD void gru_fwd_cpu(float xr, float xz, float xn, float hr, float hz, float hn,
                            float h_prev, float& r, float& z, float& n, float& h_new) {
  const float ar = sigmoid_den(xr + hr), az = sigmoid_den(xz + hz);
  const float q = 1.f / (ar * az);
  r = az * q;
  z = ar * q;
  n = tanh(xn + r * hn);
  h_new = n + z * (h_prev - n);
}

// double keeps the exact path.
LIGHTDL_HD void lstm_fwd_cpu(double& i, double& f, double& g, double& o, double c_prev,
                             double& c_new, double& h_new) {
  lstm_fwd(i, f, g, o, c_prev, c_new, h_new);
}
LIGHTDL_HD void gru_fwd_cpu(double xr, double xz, double xn, double hr, double hz, double hn,
                            double h_prev, double& r, double& z, double& n, double& h_new) {
  gru_fwd(xr, xz, xn, hr, hz, hn, h_prev, r, z, n, h_new);
}
#endif

}  // namespace rnn_math
}  // namespace
}  // namespace lightdl

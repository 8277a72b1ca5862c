// CPU direct 1-D convolution (groups == 1): forward with bias and activation in the epilogue,
// grad_input, and grad_weight with grad_bias, each one pass of our own loops
// (csrc/cpu/conv1d_kernels.h). Work split: forward and grad_input over (batch, output-channel
// blocks) / batch elements, grad_weight over output channels (each channel sums the batch in
// order: no atomics, results independent of the thread count).
//
// The input is zero-padded once (a copy of x, small next to the output when channels are few,
// which is when this path runs) so the inner loops need no bounds tests.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <cstring>
#include <string>

#include "../conv1d_direct.h"
#include "conv1d_table.h"

namespace lightdl {
const char* cpu_isa();  // csrc/cpu/isa.cpp

namespace cpu {

const Conv1dTable<float>& conv1d_table_f32() {
  static const Conv1dTable<float>& t = [] () -> const Conv1dTable<float>& {
    const std::string isa = cpu_isa();
    if (isa == "avx512") return isa_avx512::conv1d_table_f32();
    if (isa == "avx2") return isa_avx2::conv1d_table_f32();
    return isa_default::conv1d_table_f32();
  }();
  return t;
}
const Conv1dTable<double>& conv1d_table_f64() {
  static const Conv1dTable<double>& t = [] () -> const Conv1dTable<double>& {
    const std::string isa = cpu_isa();
    if (isa == "avx512") return isa_avx512::conv1d_table_f64();
    if (isa == "avx2") return isa_avx2::conv1d_table_f64();
    return isa_default::conv1d_table_f64();
  }();
  return t;
}

namespace {

template <typename T>
const Conv1dTable<T>& table();
template <>
const Conv1dTable<float>& table<float>() { return conv1d_table_f32(); }
template <>
const Conv1dTable<double>& table<double>() { return conv1d_table_f64(); }

// float64 runs in double, everything else in float (half types are converted once here and
// rounded back once at the end).
at::ScalarType compute_type(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor to_compute(const at::Tensor& t, at::ScalarType ct) {
  return t.to(ct).contiguous();
}

template <typename F>
void with_type(at::ScalarType ct, F&& f) {
  if (ct == at::kDouble) f(double{});
  else f(float{});
}

// (N, C, L) -> (N, C, L + 2p) with zeros.
at::Tensor padded(const at::Tensor& x, int64_t p, at::ScalarType ct) {
  at::Tensor xc = to_compute(x, ct);
  return p == 0 ? xc : at::constant_pad_nd(xc, {p, p}, 0).contiguous();
}

// Output channels per forward task: the kernel's register tile is 4 channels wide; 16 keeps a
// task's weights in L1 and still gives many tasks per batch element.
constexpr int64_t kOutBlock = 16;

}  // namespace

std::tuple<at::Tensor, at::Tensor> conv1d_direct_forward(const at::Tensor& x, const at::Tensor& w,
                                                         const at::Tensor& b, Conv1dArgs a,
                                                         Act act, double alpha, bool want_pre) {
  const auto ct = compute_type(x);
  const at::Tensor xp = padded(x, a.padding, ct);
  const at::Tensor wc = to_compute(w, ct);
  const at::Tensor bc = b.defined() ? to_compute(b, ct) : at::Tensor();
  const Conv1dGeom g = conv1d_geom(x.size(0), x.size(1), w.size(0), w.size(2), x.size(2),
                                   a.stride, a.padding, a.dilation);
  at::Tensor out = at::empty({g.N, g.O, g.Lo}, x.options().dtype(ct));
  at::Tensor pre = want_pre ? at::empty({g.N, g.O, g.Lo}, x.options().dtype(ct)) : at::Tensor();
  with_type(ct, [&](auto zero) {
    using T = decltype(zero);
    const auto fn = table<T>().fwd[static_cast<int>(act)];
    const T* xpp = xp.const_data_ptr<T>();
    const T* wp = wc.const_data_ptr<T>();
    const T* bp = bc.defined() ? bc.const_data_ptr<T>() : nullptr;
    T* op = out.mutable_data_ptr<T>();
    T* pp = want_pre ? pre.mutable_data_ptr<T>() : nullptr;
    const int64_t blocks = (g.O + kOutBlock - 1) / kOutBlock;
    at::parallel_for(0, g.N * blocks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t n = t / blocks, o0 = (t % blocks) * kOutBlock;
        const int64_t o1 = std::min(g.O, o0 + kOutBlock);
        fn(xpp + n * g.C * g.Lp, wp, bp, op + n * g.O * g.Lo, pp ? pp + n * g.O * g.Lo : nullptr,
           g, o0, o1, static_cast<T>(alpha));
      }
    });
  });
  const auto dt = x.scalar_type();
  return {out.to(dt), want_pre ? pre.to(dt) : at::Tensor()};
}

at::Tensor conv1d_direct_grad_input(const at::Tensor& gz, const at::Tensor& w, int64_t L,
                                    Conv1dArgs a) {
  const auto ct = compute_type(gz);
  const at::Tensor gc = to_compute(gz, ct);
  const at::Tensor wc = to_compute(w, ct);
  const Conv1dGeom g = conv1d_geom(gz.size(0), w.size(1), w.size(0), w.size(2), L, a.stride,
                                   a.padding, a.dilation);
  TORCH_CHECK(g.Lo == gz.size(2), "conv1d_direct_grad_input: grad length ", gz.size(2),
              " does not match the output length ", g.Lo);
  at::Tensor gx = at::empty({g.N, g.C, g.L}, gz.options().dtype(ct));
  with_type(ct, [&](auto zero) {
    using T = decltype(zero);
    const auto fn = table<T>().bwd_input;
    const T* gp = gc.const_data_ptr<T>();
    const T* wp = wc.const_data_ptr<T>();
    T* xo = gx.mutable_data_ptr<T>();
    at::parallel_for(0, g.N, 1, [&](int64_t n0, int64_t n1) {
      // The padded gradient of one batch element, then its interior [P, P + L) copied out.
      std::vector<T> gxp(static_cast<size_t>(g.C * g.Lp));
      for (int64_t n = n0; n < n1; ++n) {
        fn(gp + n * g.O * g.Lo, wp, gxp.data(), g);
        for (int64_t c = 0; c < g.C; ++c)
          std::memcpy(xo + (n * g.C + c) * g.L, gxp.data() + c * g.Lp + g.P, sizeof(T) * g.L);
      }
    });
  });
  return gx.to(gz.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> conv1d_direct_grad_weight(const at::Tensor& gz,
                                                             const at::Tensor& x, int64_t K,
                                                             Conv1dArgs a, bool want_bias) {
  const auto ct = compute_type(gz);
  const at::Tensor gc = to_compute(gz, ct);
  const at::Tensor xp = padded(x, a.padding, ct);
  const Conv1dGeom g = conv1d_geom(x.size(0), x.size(1), gz.size(1), K, x.size(2), a.stride,
                                   a.padding, a.dilation);
  at::Tensor gw = at::empty({g.O, g.C, g.K}, gz.options().dtype(ct));
  at::Tensor gb = want_bias ? at::empty({g.O}, gz.options().dtype(ct)) : at::Tensor();
  with_type(ct, [&](auto zero) {
    using T = decltype(zero);
    const auto fn = table<T>().bwd_weight;
    const T* gp = gc.const_data_ptr<T>();
    const T* xpp = xp.const_data_ptr<T>();
    T* wo = gw.mutable_data_ptr<T>();
    T* bo = want_bias ? gb.mutable_data_ptr<T>() : nullptr;
    at::parallel_for(0, g.O, 1, [&](int64_t o0, int64_t o1) { fn(gp, xpp, wo, bo, g, o0, o1); });
  });
  const auto dt = gz.scalar_type();
  return {gw.to(dt), want_bias ? gb.to(dt) : at::Tensor()};
}

}  // namespace cpu
}  // namespace lightdl

// CPU direct 1-D convolution (groups == 1): the forward with bias and activation in the
// epilogue, and the whole backward in one pass of our own loops (csrc/cpu/conv1d_kernels.h).
//
// Work split: the forward over (batch element, block of output channels); the backward over a
// fixed number of batch chunks, each with its own grad_weight/grad_bias accumulators, summed
// in chunk order at the end: no atomics, and results that do not depend on the thread count.
//
// The input is zero-padded and split into its stride phases once per call (a copy of x: small
// next to the output when channels are few, which is when this path runs), so the inner loops
// need no bounds tests and read contiguously for every stride.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <string>
#include <vector>

#include "../checks.h"
#include "../conv1d_direct.h"
#include "conv1d_table.h"

namespace lightdl {
const char* cpu_isa();  // csrc/cpu/isa.cpp

namespace cpu {

const Conv1dTable<float>& conv1d_table_f32() {
  static const Conv1dTable<float>& t = []() -> const Conv1dTable<float>& {
    const std::string isa = cpu_isa();
    if (isa == "avx512") return isa_avx512::conv1d_table_f32();
    if (isa == "avx2") return isa_avx2::conv1d_table_f32();
    return isa_default::conv1d_table_f32();
  }();
  return t;
}
const Conv1dTable<double>& conv1d_table_f64() {
  static const Conv1dTable<double>& t = []() -> const Conv1dTable<double>& {
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
// their results rounded once at the end).
at::ScalarType compute_type(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// (No dispatcher call when nothing is to be done: on the short series of the RR-interval
// models a call's fixed cost is a good part of its time.)
at::Tensor to_compute(const at::Tensor& t, at::ScalarType ct) {
  if (t.scalar_type() == ct && t.is_contiguous()) return t;
  return t.to(ct).contiguous();
}

template <typename F>
void with_type(at::ScalarType ct, F&& f) {
  if (ct == at::kDouble) f(double{});
  else f(float{});
}

// (N, C, L) -> the phased layout (N, C, S * Lph): zero-padded by P on the left and up to
// S * Lph on the right, then each row split into its S phases; returned as a flat buffer
// with kSlack zeros after the last row, because the kernels compute partial tiles at the end
// of a row as full ones (vector loads that may run up to one tile past it; those lanes are
// discarded). Written in one pass over x by our own loop (constant_pad_nd and a strided copy
// did it in two passes and four ATen calls).
constexpr int64_t kSlack = 64;

template <typename T>
void fill_phased(const T* x, T* out, const Conv1dGeom& g, int64_t rows) {
  const int64_t R = g.S * g.Lph;
  at::parallel_for(0, rows, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(R, 1)),
                   [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * g.L;
      T* o = out + r * R;
      if (g.S == 1) {
        std::fill(o, o + g.P, T(0));
        std::copy(xr, xr + g.L, o + g.P);
        std::fill(o + g.P + g.L, o + R, T(0));
        continue;
      }
      if (g.S == 2) {
        // Both phases in one pass, a de-interleave that GCC vectorises where both are inside
        // the row (j in [ja, jb)). The general loop below runs one scalar strided copy per
        // phase: the c16-s2 forward op took 1.12-1.15 ms with it, 0.86-0.90 ms with this
        // (AMD EPYC Zen 5, 1 thread, interleaved).
        T* o0 = o;
        T* o1 = o + g.Lph;
        const auto padded = [&](int64_t m) { return m >= 0 && m < g.L ? xr[m] : T(0); };
        const int64_t ja = std::min<int64_t>(g.Lph, (g.P + 1) / 2);
        const int64_t jb = std::max<int64_t>(ja, std::min<int64_t>(g.Lph, (g.L + g.P) / 2));
        for (int64_t j = 0; j < ja; ++j) {
          o0[j] = padded(2 * j - g.P);
          o1[j] = padded(2 * j + 1 - g.P);
        }
        const T* src = xr + 2 * ja - g.P;
        for (int64_t j = 0; j < jb - ja; ++j) {
          o0[ja + j] = src[2 * j];
          o1[ja + j] = src[2 * j + 1];
        }
        for (int64_t j = jb; j < g.Lph; ++j) {
          o0[j] = padded(2 * j - g.P);
          o1[j] = padded(2 * j + 1 - g.P);
        }
        continue;
      }
      // Phase s holds input positions j S + s - P: inside [0, L) for one run of j, padding on
      // either side. (A bounds test per element took 7-10% of the c16-s2 shape's backward.)
      for (int64_t s = 0; s < g.S; ++s) {
        T* os = o + s * g.Lph;
        const int64_t j0 = std::min<int64_t>(g.Lph, (g.P - s + g.S - 1) / g.S);  // P - s > -S
        const int64_t j1 = std::max<int64_t>(j0, std::min<int64_t>(g.Lph, (g.L + g.P - s + g.S - 1) / g.S));
        std::fill(os, os + j0, T(0));
        for (int64_t j = j0; j < j1; ++j) os[j] = xr[j * g.S + s - g.P];
        std::fill(os + j1, os + g.Lph, T(0));
      }
    }
  });
}

at::Tensor phased(const at::Tensor& x, const Conv1dGeom& g, at::ScalarType ct) {
  const at::Tensor xc = to_compute(x, ct);
  const int64_t rows = g.N * g.C, n = rows * g.S * g.Lph;
  at::Tensor buf = at::empty({n + kSlack}, xc.options());
  with_type(ct, [&](auto zero) {
    using T = decltype(zero);
    T* out = buf.mutable_data_ptr<T>();
    std::fill(out + n, out + n + kSlack, T(0));
    fill_phased(xc.const_data_ptr<T>(), out, g, rows);
  });
  return buf;
}

Conv1dGeom geom_of(const at::Tensor& x, const at::Tensor& w, Conv1dArgs a) {
  return conv1d_geom(x.size(0), x.size(1), w.size(0), w.size(2), x.size(2), a.stride, a.padding,
                     a.dilation);
}

// Output channels per forward task: the kernel's register tile is 4 channels wide; 16 keeps a
// task's weights in L1 and still gives many tasks per batch element.
constexpr int64_t kOutBlock = 16;
// Batch chunks of the backward, each with its own weight/bias accumulators: a number fixed by
// the shape (not by the thread count), so the final sums are reproducible.
constexpr int64_t kMaxChunks = 16;

}  // namespace

at::Tensor conv1d_direct_forward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                                 Conv1dArgs a, Act act, double alpha) {
  const auto ct = compute_type(x);
  const Conv1dGeom g = geom_of(x, w, a);
  const at::Tensor xph = phased(x, g, ct);
  const at::Tensor wc = to_compute(w, ct);
  const at::Tensor bc = b.defined() ? to_compute(b, ct) : at::Tensor();
  at::Tensor out = at::empty({g.N, g.O, g.Lo}, x.options().dtype(ct));
  with_type(ct, [&](auto zero) {
    using T = decltype(zero);
    const auto fn = table<T>().fwd[static_cast<int>(act)];
    const T* xp = xph.const_data_ptr<T>();
    const T* wp = wc.const_data_ptr<T>();
    const T* bp = bc.defined() ? bc.const_data_ptr<T>() : nullptr;
    T* op = out.mutable_data_ptr<T>();
    const int64_t blocks = (g.O + kOutBlock - 1) / kOutBlock;
    at::parallel_for(0, g.N * blocks, 1, [&](int64_t t0, int64_t t1) {
      fn(xp, wp, bp, op, g, t0, t1, kOutBlock, static_cast<T>(alpha));
    });
  });
  return out.scalar_type() == x.scalar_type() ? out : out.to(x.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv1d_direct_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
    const at::Tensor& saved, Conv1dArgs a, Act act, double alpha, std::array<bool, 3> mask) {
  const auto ct = compute_type(x);
  const Conv1dGeom g = geom_of(x, w, a);
  // act' from the saved output when it is in the compute type (a half-type output would need
  // a converting pass): no recomputed pre-activation. Signal shape (64x1x1000 -> 32, K = 7,
  // relu), backward: 3.2-4.2 ms recomputing, 3.1-3.8 ms from the output (harness, 1 thread).
  const bool use_saved = saved.defined() && saved.numel() > 0 && saved.scalar_type() == ct;
  const Act kact = use_saved ? from_output(act, alpha, "fused_conv1d_backward") : act;
  const at::Tensor sc = use_saved ? saved.contiguous() : at::Tensor();
  const bool want_b = mask[2] && b.defined();
  const at::Tensor xph = phased(x, g, ct);
  const at::Tensor gc = to_compute(grad, ct);
  const at::Tensor wc = to_compute(w, ct);
  const at::Tensor bc = b.defined() ? to_compute(b, ct) : at::Tensor();
  const int64_t CK = g.C * g.K, R = g.S * g.Lph;
  const int64_t chunks = std::max<int64_t>(1, std::min(g.N, kMaxChunks));
  at::Tensor gx = mask[0] ? at::empty({g.N, g.C, g.L}, x.options().dtype(ct)) : at::Tensor();
  at::Tensor gw = mask[1] ? at::empty({g.O, g.C, g.K}, x.options().dtype(ct)) : at::Tensor();
  at::Tensor gb = want_b ? at::empty({g.O}, x.options().dtype(ct)) : at::Tensor();
  with_type(ct, [&](auto zero) {
    using T = decltype(zero);
    const auto fn = table<T>().bwd[static_cast<int>(kact)];
    // Accumulators per chunk: grad_weight (O * CK) then grad_bias (O).
    std::vector<T> acc(static_cast<size_t>(chunks * (g.O * CK + g.O)), T(0));
    const T* gp = gc.const_data_ptr<T>();
    const T* xp = xph.const_data_ptr<T>();
    const T* wp = wc.const_data_ptr<T>();
    const T* bp = bc.defined() ? bc.const_data_ptr<T>() : nullptr;
    const T* sp = use_saved ? sc.const_data_ptr<T>() : nullptr;
    T* gxp = mask[0] ? gx.mutable_data_ptr<T>() : nullptr;
    at::parallel_for(0, chunks, 1, [&](int64_t k0, int64_t k1) {
      std::vector<T> gxph(static_cast<size_t>(mask[0] ? g.C * R : 0));
      std::vector<T> zrow(static_cast<size_t>(4 * g.Lo));  // kOB rows
      for (int64_t k = k0; k < k1; ++k) {
        T* a_w = acc.data() + k * (g.O * CK + g.O);
        fn(gp, xp, wp, bp, sp, gxp, mask[1] ? a_w : nullptr, want_b ? a_w + g.O * CK : nullptr,
           gxph.data(), zrow.data(), g, g.N * k / chunks, g.N * (k + 1) / chunks,
           static_cast<T>(alpha));
      }
    });
    // Chunk partials summed in chunk order.
    for (int64_t k = 1; k < chunks; ++k) {
      T* dst = acc.data();
      const T* src = acc.data() + k * (g.O * CK + g.O);
      for (int64_t i = 0; i < g.O * CK + g.O; ++i) dst[i] += src[i];
    }
    if (mask[1]) std::copy_n(acc.data(), g.O * CK, gw.mutable_data_ptr<T>());
    if (want_b) std::copy_n(acc.data() + g.O * CK, g.O, gb.mutable_data_ptr<T>());
  });
  const auto dt = x.scalar_type();
  const auto back = [&](const at::Tensor& t) {
    return !t.defined() || t.scalar_type() == dt ? t : t.to(dt);
  };
  return {back(gx), back(gw), back(gb)};
}

}  // namespace cpu
}  // namespace lightdl

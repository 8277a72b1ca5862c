// CPU kernels of lightdl::act_pool1d: pool(act(x)) over the last dim, max or average, in one
// pass; the backward applies act' once, at the positions the windows routed gradient to.
//
// Why an op of its own: in a conv -> BN -> act -> pool block the activation and the pooling
// are two more passes over the block's largest tensor, and PyTorch's max_pool1d with grad runs
// its 2-D kernel with int64 indices (af_cnn, 64 x 32 x 60: ~1.1 ms forward, against ~0.1 ms
// without grad). Here the forward reads x once and writes only the pooled output; the backward
// recomputes each window's argmax from x (nothing but x is saved: no index tensor).
//
// Two paths: stride == kernel_size without padding (every CNN1d block) runs the vectorised
// per-ISA loops of act_pool_kernels.h in float or double (half types converted once); any
// other window runs the generic loops below, in every dtype. Rows (n, c) are independent and
// split across threads; each element's value is computed the same way whatever the split.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <string>
#include <vector>

#include "../act_pool_args.h"
#include "../activations.h"
#include "../pool_math.h"
#include "act_pool_table.h"

namespace lightdl {
const char* cpu_isa();  // csrc/cpu/isa.cpp

namespace cpu {

const ActPoolTable<float>& act_pool_table_f32() {
  static const ActPoolTable<float>& t = []() -> const ActPoolTable<float>& {
    const std::string isa = cpu_isa();
    if (isa == "avx512") return isa_avx512::act_pool_table_f32();
    if (isa == "avx2") return isa_avx2::act_pool_table_f32();
    return isa_default::act_pool_table_f32();
  }();
  return t;
}
const ActPoolTable<double>& act_pool_table_f64() {
  static const ActPoolTable<double>& t = []() -> const ActPoolTable<double>& {
    const std::string isa = cpu_isa();
    if (isa == "avx512") return isa_avx512::act_pool_table_f64();
    if (isa == "avx2") return isa_avx2::act_pool_table_f64();
    return isa_default::act_pool_table_f64();
  }();
  return t;
}

namespace {

template <typename T>
const ActPoolTable<T>& table();
template <>
const ActPoolTable<float>& table<float>() { return act_pool_table_f32(); }
template <>
const ActPoolTable<double>& table<double>() { return act_pool_table_f64(); }

// Elements per parallel task (as in bias_act.cpp).
constexpr int64_t kBlock = 1 << 15;

int64_t rows_per_task(const Pool1dGeom& g) {
  return std::max<int64_t>(1, kBlock / std::max<int64_t>(g.L, 1));
}

bool tiled(const Pool1dGeom& g) { return g.S == g.K && g.P == 0; }

// Where L is not a multiple of K, each row ends in a tail that no window reads, so the rows'
// windows are not one run. Calling the kernels per row ran their scalar remainder loop on every
// row (af_cnn's third block, 64 x 64 x 15 with K = 2: forward 284 us, backward 487 us, against
// 33 and 20 us at L = 14); instead the windowed parts of up to kGather elements' worth of rows
// are copied into one contiguous run, which the kernels then take in one call.
constexpr int64_t kGather = 4096;

int64_t gather_rows(const Pool1dGeom& g) {
  return std::max<int64_t>(1, kGather / std::max<int64_t>(g.Lo * g.K, 1));
}

// The windowed parts (the first Lo * K elements) of rows [a, b) of x, one after another in buf.
template <typename T>
void gather_windows(const T* x, int64_t a, int64_t b, const Pool1dGeom& g, T* buf) {
  const int64_t W = g.Lo * g.K;
  for (int64_t r = a; r < b; ++r) std::copy_n(x + r * g.L, W, buf + (r - a) * W);
}

at::Tensor to_compute(const at::Tensor& t) {
  if (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16)
    return t.to(at::kFloat).contiguous();
  return t.contiguous();
}

// ---- stride == kernel_size, no padding: the per-ISA loops --------------------------------

template <typename T>
void forward_tiled(const T* x, T* y, const Pool1dGeom& g, Act act, Pool pool, T alpha) {
  const auto f = table<T>().fwd[static_cast<int>(act)][static_cast<int>(pool)][g.K == 2];
  at::parallel_for(0, g.R, rows_per_task(g), [&](int64_t r0, int64_t r1) {
    if (g.Lo * g.K == g.L) {  // no tail: these rows are one run of windows
      f(x + r0 * g.L, y + r0 * g.Lo, (r1 - r0) * g.Lo, g.K, alpha);
      return;
    }
    // A tail: the windowed part of a few rows is first copied into one run (see kGather).
    const int64_t W = g.Lo * g.K, sub = gather_rows(g);
    std::vector<T> xb(static_cast<size_t>(std::min(sub, r1 - r0) * W));
    for (int64_t a = r0; a < r1; a += sub) {
      const int64_t b = std::min(r1, a + sub);
      gather_windows(x, a, b, g, xb.data());
      f(xb.data(), y + a * g.Lo, (b - a) * g.Lo, g.K, alpha);
    }
  });
}

template <typename T>
void backward_tiled(const T* grad, const T* x, T* gx, const Pool1dGeom& g, Act act, Pool pool,
                    T alpha) {
  const auto f = table<T>().bwd[static_cast<int>(act)][static_cast<int>(pool)][g.K == 2];
  at::parallel_for(0, g.R, rows_per_task(g), [&](int64_t r0, int64_t r1) {
    if (g.Lo * g.K == g.L) {
      f(grad + r0 * g.Lo, x + r0 * g.L, gx + r0 * g.L, (r1 - r0) * g.Lo, g.K, alpha);
      return;
    }
    // A tail: as in forward_tiled, on runs of a few rows' windowed parts.
    const int64_t W = g.Lo * g.K, sub = gather_rows(g);
    const size_t n = static_cast<size_t>(std::min(sub, r1 - r0) * W);
    std::vector<T> xb(n), gb(n);
    for (int64_t a = r0; a < r1; a += sub) {
      const int64_t b = std::min(r1, a + sub);
      gather_windows(x, a, b, g, xb.data());
      f(grad + a * g.Lo, xb.data(), gb.data(), (b - a) * g.Lo, g.K, alpha);
      for (int64_t r = a; r < b; ++r) {
        std::copy_n(gb.data() + (r - a) * W, W, gx + r * g.L);
        std::fill(gx + r * g.L + W, gx + (r + 1) * g.L, T(0));  // read by no window
      }
    }
  });
}

// ---- any window: generic loops --------------------------------------------------------------

template <Act A, Pool PK, typename scalar_t>
void forward_rows(const scalar_t* x, scalar_t* y, const Pool1dGeom& g, int64_t r0, int64_t r1,
                  at::opmath_type<scalar_t> alpha) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t r = r0; r < r1; ++r) {
    const scalar_t* xr = x + r * g.L;
    scalar_t* yr = y + r * g.Lo;
    for (int64_t o = 0; o < g.Lo; ++o) {
      int64_t j0, j1, arg;
      pool1d_window(g, o, j0, j1);
      const acc_t v = PK == Pool::Max ? pool1d_window_max<A, acc_t>(xr, j0, j1, alpha, arg)
                                      : pool1d_window_avg<A, acc_t>(xr, j0, j1, g.K, alpha);
      yr[o] = static_cast<scalar_t>(v);
    }
  }
}

// gx[j] = act'(x[j]) * (sum of grad[o] over the windows o that route to j) (/ K for avg),
// summed in window order in the compute type.
template <Act A, Pool PK, typename scalar_t>
void backward_rows(const scalar_t* grad, const scalar_t* x, scalar_t* gx, const Pool1dGeom& g,
                   int64_t r0, int64_t r1, at::opmath_type<scalar_t> alpha) {
  using acc_t = at::opmath_type<scalar_t>;
  std::vector<acc_t> buf(static_cast<size_t>(g.L));
  const acc_t scale = PK == Pool::Avg ? acc_t(1) / static_cast<acc_t>(g.K) : acc_t(1);
  for (int64_t r = r0; r < r1; ++r) {
    const scalar_t* xr = x + r * g.L;
    const scalar_t* gr = grad + r * g.Lo;
    std::fill(buf.begin(), buf.end(), acc_t(0));
    for (int64_t o = 0; o < g.Lo; ++o) {
      int64_t j0, j1, arg;
      pool1d_window(g, o, j0, j1);
      const acc_t go = static_cast<acc_t>(gr[o]);
      if constexpr (PK == Pool::Max) {
        pool1d_window_max<A, acc_t>(xr, j0, j1, alpha, arg);
        buf[arg] += go;
      } else {
        for (int64_t j = j0; j < j1; ++j) buf[j] += go;
      }
    }
    scalar_t* gxr = gx + r * g.L;
    for (int64_t j = 0; j < g.L; ++j)
      gxr[j] = static_cast<scalar_t>(buf[j] * scale *
                                     ActMath<A>::grad(static_cast<acc_t>(xr[j]), alpha));
  }
}

at::Tensor act_pool1d(const at::Tensor& x_in, c10::string_view act, c10::string_view pool,
                      int64_t kernel_size, int64_t stride, int64_t padding, double alpha) {
  const Pool1dGeom g = act_pool1d_geom(x_in, kernel_size, stride, padding);
  const Act a = parse_act(std::string(act));
  const Pool pk = parse_pool(std::string(pool));
  if (g.R * g.Lo == 0) return at::empty({x_in.size(0), x_in.size(1), g.Lo}, x_in.options());
  if (tiled(g)) {
    const at::Tensor xc = to_compute(x_in);
    at::Tensor y = at::empty({x_in.size(0), x_in.size(1), g.Lo}, xc.options());
    if (xc.scalar_type() == at::kDouble) {
      forward_tiled<double>(xc.const_data_ptr<double>(), y.mutable_data_ptr<double>(), g, a, pk,
                            alpha);
    } else {
      forward_tiled<float>(xc.const_data_ptr<float>(), y.mutable_data_ptr<float>(), g, a, pk,
                           static_cast<float>(alpha));
    }
    return y.scalar_type() == x_in.scalar_type() ? y : y.to(x_in.scalar_type());
  }
  const at::Tensor x = x_in.contiguous();
  at::Tensor y = at::empty({x.size(0), x.size(1), g.Lo}, x.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "act_pool1d", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    LIGHTDL_DISPATCH_ACT(a, [&] {
      dispatch_pool(pk, [&](auto p) {
        at::parallel_for(0, g.R, rows_per_task(g), [&](int64_t r0, int64_t r1) {
          forward_rows<ACT, decltype(p)::value>(xp, yp, g, r0, r1, static_cast<acc_t>(alpha));
        });
      });
    });
  });
  return y;
}

at::Tensor act_pool1d_backward(const at::Tensor& grad_in, const at::Tensor& x_in,
                               c10::string_view act, c10::string_view pool, int64_t kernel_size,
                               int64_t stride, int64_t padding, double alpha) {
  const Pool1dGeom g = act_pool1d_geom(x_in, kernel_size, stride, padding);
  check_act_pool1d_grad(grad_in, x_in, g);
  const Act a = parse_act(std::string(act));
  const Pool pk = parse_pool(std::string(pool));
  if (g.R * g.L == 0) return at::empty(x_in.sizes(), x_in.options());
  if (tiled(g)) {
    const at::Tensor xc = to_compute(x_in), gc = to_compute(grad_in);
    at::Tensor gx = at::empty(xc.sizes(), xc.options());
    if (xc.scalar_type() == at::kDouble) {
      backward_tiled<double>(gc.const_data_ptr<double>(), xc.const_data_ptr<double>(),
                             gx.mutable_data_ptr<double>(), g, a, pk, alpha);
    } else {
      backward_tiled<float>(gc.const_data_ptr<float>(), xc.const_data_ptr<float>(),
                            gx.mutable_data_ptr<float>(), g, a, pk, static_cast<float>(alpha));
    }
    return gx.scalar_type() == x_in.scalar_type() ? gx : gx.to(x_in.scalar_type());
  }
  const at::Tensor x = x_in.contiguous(), grad = grad_in.contiguous();
  at::Tensor gx = at::empty(x.sizes(), x.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "act_pool1d_bwd", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* gxp = gx.mutable_data_ptr<scalar_t>();
    LIGHTDL_DISPATCH_ACT(a, [&] {
      dispatch_pool(pk, [&](auto p) {
        at::parallel_for(0, g.R, rows_per_task(g), [&](int64_t r0, int64_t r1) {
          backward_rows<ACT, decltype(p)::value>(gp, xp, gxp, g, r0, r1,
                                                 static_cast<acc_t>(alpha));
        });
      });
    });
  });
  return gx;
}

}  // namespace
}  // namespace cpu
}  // namespace lightdl

TORCH_LIBRARY_IMPL(lightdl, CPU, m) {
  m.impl("act_pool1d", &lightdl::cpu::act_pool1d);
  m.impl("act_pool1d_backward", &lightdl::cpu::act_pool1d_backward);
}

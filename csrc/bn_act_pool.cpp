// lightdl::bn_act_pool1d: pool(act(batch_norm(x))) over x (N, C, L), forward and backward, for
// the conv -> BN -> act -> pool blocks of CNN1d.
//
// Why an op of its own: on short series PyTorch's training-mode batch norm is the slowest part
// of such a block (af_cnn, 64 x 32 x 60 on one CPU core: F.batch_norm ~0.37 ms forward and
// ~0.44 ms backward, against ~0.05 ms in eval mode). Here, on CPU, the forward is one pass for
// the per-channel statistics, one that writes z = x * scale + shift (scale = w / sqrt(var +
// eps), shift = b - mean * scale), and act_pool1d's kernels on z; the backward recomputes z,
// gets dz from act_pool1d's backward, and forms grad_x, grad_weight and grad_bias in one
// pass per channel over x and dz:
//   grad_bias = sum dz,  grad_weight = sum dz * xhat   (xhat = (x - mean) / sqrt(var + eps)),
//   grad_x = w / sqrt(var + eps) * (dz - mean(dz) - xhat * mean(dz * xhat))   (training),
//   grad_x = dz * w / sqrt(var + eps)                                          (eval).
// The op is functional: it returns the batch mean and biased variance (training) or copies
// of the running ones (eval), and the Python wrapper updates the running statistics.
//
// One device-generic entry point. CPU: our loops (csrc/cpu/bn_kernels.h, per ISA) plus the
// act_pool1d CPU kernels.
// CUDA: the statistics and the affine passes are ATen ops (var_mean, elementwise), then the
// act_pool1d CUDA kernels; a fused CUDA kernel waits for a GPU to measure it on.
// float64 runs in double, everything else in float (half types converted once).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <string>
#include <tuple>

#include "act_pool_args.h"
#include "checks.h"
#include "cpu/bn_table.h"

namespace lightdl {
const char* cpu_isa();  // csrc/cpu/isa.cpp

namespace {

using OptTensor = std::optional<at::Tensor>;

// The batch and length dims of (N, C, L), as an IntArrayRef: with a braced list, `sum({0, 2})`
// is ambiguous between the IntArrayRef and DimnameList overloads in some torch versions.
constexpr std::array<int64_t, 2> kStatDimList{0, 2};
const at::IntArrayRef kStatDims(kStatDimList);

bool defined(const OptTensor& t) { return t.has_value() && t->defined(); }

at::ScalarType compute_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor as_compute(const at::Tensor& t, at::ScalarType ct) {
  if (t.scalar_type() == ct && t.is_contiguous()) return t;
  return t.to(ct).contiguous();
}

void check_channels(const OptTensor& p, const at::Tensor& x, const char* op, const char* name) {
  if (!defined(p)) return;
  TORCH_CHECK_VALUE(p->dim() == 1 && p->size(0) == x.size(1), op, ": `", name,
                    "` must have shape (", x.size(1), ",) (one value per channel of x), got ",
                    p->sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(p->scalar_type()), op, ": `", name,
                   "` must be a floating-point tensor, got ", p->scalar_type());
  TORCH_CHECK_VALUE(p->device() == x.device(), op, ": `", name, "` is on ", p->device(),
                    " but `x` is on ", x.device());
}

// Checks x and the window (act_pool1d's own checks) and the per-channel tensors.
Pool1dGeom check_args(const char* op, const at::Tensor& x, const OptTensor& weight,
                      const OptTensor& bias, int64_t K, int64_t S, int64_t P, double eps) {
  check_float_tensor(x, op, "x");
  TORCH_CHECK_VALUE(x.dim() == 3, op, ": `x` must have shape (N, C, L), got ", x.sizes());
  check_channels(weight, x, op, "weight");
  check_channels(bias, x, op, "bias");
  TORCH_CHECK_VALUE(eps > 0, op, ": `eps` must be > 0, got ", eps);
  return act_pool1d_geom(x, K, S, P);
}

// The compiled act_pool1d op, through the dispatcher: its CPU or CUDA kernel by x's device.
at::Tensor call_act_pool(const at::Tensor& z, c10::string_view act, c10::string_view pool,
                         int64_t K, int64_t S, int64_t P, double alpha) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("lightdl::act_pool1d", "")
                             .typed<at::Tensor(const at::Tensor&, c10::string_view,
                                               c10::string_view, int64_t, int64_t, int64_t,
                                               double)>();
  return op.call(z, act, pool, K, S, P, alpha);
}

at::Tensor call_act_pool_backward(const at::Tensor& grad, const at::Tensor& z,
                                  c10::string_view act, c10::string_view pool, int64_t K,
                                  int64_t S, int64_t P, double alpha) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("lightdl::act_pool1d_backward", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                               c10::string_view, c10::string_view, int64_t,
                                               int64_t, int64_t, double)>();
  return op.call(grad, z, act, pool, K, S, P, alpha);
}

// ---- CPU ------------------------------------------------------------------------------------

template <typename T>
const cpu::BnTable<T>& bn_table();
template <>
const cpu::BnTable<float>& bn_table<float>() {
  static const cpu::BnTable<float>& t = []() -> const cpu::BnTable<float>& {
    const std::string isa = cpu_isa();
    if (isa == "avx512") return cpu::isa_avx512::bn_table_f32();
    if (isa == "avx2") return cpu::isa_avx2::bn_table_f32();
    return cpu::isa_default::bn_table_f32();
  }();
  return t;
}
template <>
const cpu::BnTable<double>& bn_table<double>() {
  static const cpu::BnTable<double>& t = []() -> const cpu::BnTable<double>& {
    const std::string isa = cpu_isa();
    if (isa == "avx512") return cpu::isa_avx512::bn_table_f64();
    if (isa == "avx2") return cpu::isa_avx2::bn_table_f64();
    return cpu::isa_default::bn_table_f64();
  }();
  return t;
}

// Channels per parallel task: a channel is N rows of L, strided by C * L.
int64_t channel_grain(int64_t N, int64_t L) {
  return std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(N * L, 1));
}

// scale = w / sqrt(var + eps), shift = b - mean * scale (w = 1, b = 0 when absent).
template <typename T>
void scale_shift(const T* mean, const T* var, const T* w, const T* b, int64_t C, double eps,
                 T* scale, T* shift) {
  for (int64_t c = 0; c < C; ++c) {
    const T inv = T(1) / std::sqrt(var[c] + static_cast<T>(eps));
    scale[c] = (w != nullptr ? w[c] : T(1)) * inv;
    shift[c] = (b != nullptr ? b[c] : T(0)) - mean[c] * scale[c];
  }
}

// ---- the op -------------------------------------------------------------------------------

struct Prepared {
  at::Tensor xc, mean, var, scale, shift;  // in the compute type
};

// x in the compute type, the statistics (computed from x when batch_stats, else mean_in and
// var_in in the compute type) and the per-channel affine.
Prepared prepare(const at::Tensor& x, const OptTensor& weight, const OptTensor& bias,
                 const at::Tensor& mean_in, const at::Tensor& var_in, bool batch_stats,
                 double eps) {
  const auto ct = compute_type(x);
  Prepared p;
  p.xc = as_compute(x, ct);
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2);
  if (x.is_cpu()) {
    if (batch_stats) {
      p.mean = at::empty({C}, p.xc.options());
      p.var = at::empty({C}, p.xc.options());
    } else {
      p.mean = as_compute(mean_in, ct);
      p.var = as_compute(var_in, ct);
    }
    p.scale = at::empty({C}, p.xc.options());
    p.shift = at::empty({C}, p.xc.options());
    const at::Tensor w = defined(weight) ? as_compute(*weight, ct) : at::Tensor();
    const at::Tensor b = defined(bias) ? as_compute(*bias, ct) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(ct, "bn_act_pool1d", [&] {
      using T = scalar_t;
      if (batch_stats) {
        const T* xp = p.xc.const_data_ptr<T>();
        T *mp = p.mean.mutable_data_ptr<T>(), *vp = p.var.mutable_data_ptr<T>();
        at::parallel_for(0, C, channel_grain(N, L), [&](int64_t c0, int64_t c1) {
          bn_table<T>().stats(xp, N, C, L, c0, c1, mp, vp);
        });
      }
      scale_shift<T>(p.mean.const_data_ptr<T>(), p.var.const_data_ptr<T>(),
                     w.defined() ? w.const_data_ptr<T>() : nullptr,
                     b.defined() ? b.const_data_ptr<T>() : nullptr, C, eps,
                     p.scale.mutable_data_ptr<T>(), p.shift.mutable_data_ptr<T>());
    });
    return p;
  }
  if (batch_stats) {
    std::tie(p.var, p.mean) = at::var_mean(p.xc, kStatDims, /*unbiased=*/false, /*keepdim=*/false);
  } else {
    p.mean = as_compute(mean_in, ct);
    p.var = as_compute(var_in, ct);
  }
  p.scale = at::rsqrt(p.var + eps);
  if (defined(weight)) p.scale = p.scale * weight->to(ct);
  p.shift = -p.mean * p.scale;
  if (defined(bias)) p.shift = p.shift + bias->to(ct);
  return p;
}

// z = x * scale + shift, (N, C, L) in the compute type.
at::Tensor affine(const Prepared& p) {
  const at::Tensor& x = p.xc;
  if (!x.is_cpu()) return at::addcmul(p.shift.view({1, -1, 1}), x, p.scale.view({1, -1, 1}));
  at::Tensor z = at::empty(x.sizes(), x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bn_act_pool1d", [&] {
    using T = scalar_t;
    const T *xp = x.const_data_ptr<T>(), *sp = p.scale.const_data_ptr<T>(),
            *hp = p.shift.const_data_ptr<T>();
    T* zp = z.mutable_data_ptr<T>();
    const int64_t C = x.size(1), L = x.size(2);
    at::parallel_for(0, x.size(0) * C, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(L, 1)),
                     [&](int64_t r0, int64_t r1) {
      bn_table<T>().affine(xp, zp, C, L, r0, r1, sp, hp);
    });
  });
  return z;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> bn_act_pool1d(
    const at::Tensor& x, const OptTensor& weight, const OptTensor& bias,
    const OptTensor& running_mean, const OptTensor& running_var, bool training, double eps,
    c10::string_view act, c10::string_view pool, int64_t kernel_size, int64_t stride,
    int64_t padding, double alpha) {
  const char* op = "bn_act_pool1d";
  check_args(op, x, weight, bias, kernel_size, stride, padding, eps);
  check_channels(running_mean, x, op, "running_mean");
  check_channels(running_var, x, op, "running_var");
  if (training) {
    TORCH_CHECK_VALUE(x.size(0) * x.size(2) > 1, op,
                      ": expected more than 1 value per channel when training, got input of "
                      "shape ", x.sizes());
  } else {
    TORCH_CHECK_VALUE(defined(running_mean) && defined(running_var), op,
                      ": `running_mean` and `running_var` are needed when training=False");
  }
  // Eval: copies of the running statistics, which the op returns as its own outputs (the
  // backward needs them as they were, and outputs may not alias inputs).
  const auto ct = compute_type(x);
  const Prepared p = prepare(
      x, weight, bias, training ? at::Tensor() : running_mean->to(ct, false, /*copy=*/true),
      training ? at::Tensor() : running_var->to(ct, false, /*copy=*/true), training, eps);
  at::Tensor out = call_act_pool(affine(p), act, pool, kernel_size, stride, padding, alpha);
  if (out.scalar_type() != x.scalar_type()) out = out.to(x.scalar_type());
  return {out, p.mean, p.var};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> bn_act_pool1d_backward(
    const at::Tensor& grad, const at::Tensor& x, const OptTensor& weight, const OptTensor& bias,
    const at::Tensor& mean, const at::Tensor& var, bool training, double eps,
    c10::string_view act, c10::string_view pool, int64_t kernel_size, int64_t stride,
    int64_t padding, double alpha, std::array<bool, 3> mask) {
  const char* op = "bn_act_pool1d_backward";
  const Pool1dGeom g = check_args(op, x, weight, bias, kernel_size, stride, padding, eps);
  check_channels(mean, x, op, "mean");
  check_channels(var, x, op, "var");
  TORCH_CHECK_VALUE(grad.dim() == 3 && grad.size(0) == x.size(0) && grad.size(1) == x.size(1) &&
                        grad.size(2) == g.Lo,
                    op, ": `grad` must have shape (", x.size(0), ", ", x.size(1), ", ", g.Lo,
                    "), got ", grad.sizes());
  TORCH_CHECK_VALUE(grad.device() == x.device(), op, ": `grad` is on ", grad.device(),
                    " but `x` is on ", x.device());
  const auto ct = compute_type(x);
  const Prepared p = prepare(x, weight, bias, mean, var, /*batch_stats=*/false, eps);
  const at::Tensor dz = call_act_pool_backward(as_compute(grad, ct), affine(p), act, pool,
                                               kernel_size, stride, padding, alpha)
                            .contiguous();
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2);
  const bool want_w = mask[1] && defined(weight), want_b = mask[2] && defined(bias);
  at::Tensor gx, gw, gb;
  if (x.is_cpu()) {
    gx = mask[0] ? at::empty(x.sizes(), p.xc.options()) : at::Tensor();
    at::Tensor sums = at::empty({2, C}, p.xc.options());  // sum dz, sum dz xhat
    const at::Tensor w = defined(weight) ? as_compute(*weight, ct) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(ct, "bn_act_pool1d_backward", [&] {
      using T = scalar_t;
      const T *xp = p.xc.const_data_ptr<T>(), *dzp = dz.const_data_ptr<T>(),
              *mp = p.mean.const_data_ptr<T>(), *vp = p.var.const_data_ptr<T>(),
              *wp = w.defined() ? w.const_data_ptr<T>() : nullptr;
      T* gxp = mask[0] ? gx.mutable_data_ptr<T>() : nullptr;
      T* sp = sums.mutable_data_ptr<T>();
      at::parallel_for(0, C, channel_grain(N, L), [&](int64_t c0, int64_t c1) {
        bn_table<T>().grad(dzp, xp, gxp, N, C, L, c0, c1, mp, vp, wp, static_cast<T>(eps),
                           training, sp);
      });
    });
    // (Copies: two views of one buffer would be outputs that alias.)
    if (want_w) gw = sums[1].clone();
    if (want_b) gb = sums[0].clone();
  } else {
    const at::Tensor inv = at::rsqrt(p.var + eps);
    const at::Tensor xhat = (p.xc - p.mean.view({1, -1, 1})) * inv.view({1, -1, 1});
    const at::Tensor sdz = dz.sum(kStatDims);
    const at::Tensor sdzx = (dz * xhat).sum(kStatDims);
    if (mask[0]) {
      at::Tensor wi = defined(weight) ? inv * weight->to(ct) : inv;
      at::Tensor d = dz;
      if (training) {
        const double inv_n = 1.0 / static_cast<double>(N * L);
        d = dz - (sdz * inv_n).view({1, -1, 1}) - xhat * (sdzx * inv_n).view({1, -1, 1});
      }
      gx = d * wi.view({1, -1, 1});
    }
    if (want_w) gw = sdzx;
    if (want_b) gb = sdz;
  }
  const auto back = [&](const at::Tensor& t, at::ScalarType st) {
    return !t.defined() ? at::empty({0}, x.options())
                        : (t.scalar_type() == st ? t : t.to(st)).contiguous();
  };
  return {back(gx, x.scalar_type()), back(gw, want_w ? weight->scalar_type() : ct),
          back(gb, want_b ? bias->scalar_type() : ct)};
}

}  // namespace
}  // namespace lightdl

TORCH_LIBRARY_IMPL(lightdl, CPU, m) {
  m.impl("bn_act_pool1d", &lightdl::bn_act_pool1d);
  m.impl("bn_act_pool1d_backward", &lightdl::bn_act_pool1d_backward);
}

#ifdef LIGHTDL_WITH_CUDA
TORCH_LIBRARY_IMPL(lightdl, CUDA, m) {
  m.impl("bn_act_pool1d", &lightdl::bn_act_pool1d);
  m.impl("bn_act_pool1d_backward", &lightdl::bn_act_pool1d_backward);
}
#endif

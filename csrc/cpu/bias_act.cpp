// CPU kernels of lightdl::activation and lightdl::bias_act, forward and backward.
//
// Layout: x is made contiguous and seen as (N, C, S) with S = prod(shape[2:]). When S > 1
// every (n, c) "plane" has one scalar bias; when S == 1 (linear outputs) every row of C
// elements adds the bias vector. The backward writes grad_x and reduces grad_bias in the same
// pass over memory. Work is split into fixed-size blocks whose partial sums are combined in a
// fixed order, so results do not depend on the number of threads.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../bias_act_ops.h"
#include "../checks.h"
#include "bias_act_table.h"

namespace lightdl {
namespace cpu {
namespace {

// Elements per parallel task: big enough to hide the scheduling cost, small enough that two
// cores share a 1M-element tensor evenly.
constexpr int64_t kBlock = 1 << 15;
// Planes shorter than this are handled as rows of C*S elements with the bias expanded to
// C*S values: a call of the inner loop per (n, c) plane would cost more than its work.
constexpr int64_t kMinPlane = 256;
// The row path's grad_bias partial sums: the rows are cut into at most this many contiguous
// chunks, a number fixed by the shape alone (not by the thread count, for reproducibility),
// each with its own accumulator row, summed in chunk order at the end.
constexpr int64_t kMaxRowChunks = 32;

template <typename T>
const BiasActTable<T>& table();
template <>
const BiasActTable<float>& table<float>() { return bias_act_table_f32(); }
template <>
const BiasActTable<double>& table<double>() { return bias_act_table_f64(); }

struct Geometry {
  int64_t N, C, S;
};

Geometry geometry(const at::Tensor& x) {
  if (x.dim() < 2) return {1, 1, x.numel()};
  int64_t S = 1;
  for (int64_t d = 2; d < x.dim(); ++d) S *= x.size(d);
  return {x.size(0), x.size(1), S};
}

// The bias as a row of C*S values (b[c] repeated S times), for the row path.
template <typename T>
std::vector<T> expand_bias(const T* b, Geometry g) {
  std::vector<T> row(static_cast<size_t>(g.C * g.S));
  for (int64_t c = 0; c < g.C; ++c) std::fill_n(row.data() + c * g.S, g.S, b[c]);
  return row;
}

// T is float or double; b may be null (no bias: the tensor is one flat plane).
template <typename T>
void forward(const T* x, const T* b, T* y, Geometry g, Act act, T alpha) {
  const auto& tab = table<T>();
  const int a = static_cast<int>(act);
  const int64_t total = g.N * g.C * g.S;
  if (b != nullptr && g.S < kMinPlane) {
    const std::vector<T> row = g.S == 1 ? std::vector<T>() : expand_bias(b, g);
    const T* br = g.S == 1 ? b : row.data();
    const int64_t R = g.C * g.S;
    const int64_t rows_per_task = std::max<int64_t>(1, kBlock / std::max<int64_t>(R, 1));
    at::parallel_for(0, g.N, rows_per_task, [&](int64_t r0, int64_t r1) {
      tab.fwd_rows[a](x + r0 * R, br, y + r0 * R, r1 - r0, R, alpha);
    });
    return;
  }
  const int64_t S = b != nullptr ? g.S : total;
  at::parallel_for(0, total, kBlock, [&](int64_t i0, int64_t i1) {
    // A task may start and end mid-plane; walk its plane segments.
    for (int64_t i = i0; i < i1;) {
      const int64_t plane = i / S;
      const int64_t end = std::min(i1, (plane + 1) * S);
      const T bias = b != nullptr ? b[plane % g.C] : T(0);
      tab.fwd_plane[a](x + i, y + i, end - i, bias, alpha);
      i = end;
    }
  });
}

// gb is written only when b is given.
template <typename T>
void backward(const T* gr, const T* x, const T* b, T* gx, T* gb, Geometry g, Act act, T alpha) {
  const auto& tab = table<T>();
  const int a = static_cast<int>(act);
  const int64_t total = g.N * g.C * g.S;
  if (total == 0) {
    if (gb != nullptr) std::fill(gb, gb + g.C, T(0));
    return;
  }
  if (b == nullptr) {  // one flat plane; the sum bwd_plane returns is not needed
    at::parallel_for(0, total, kBlock, [&](int64_t i0, int64_t i1) {
      tab.bwd_plane[a](gr + i0, x + i0, gx + i0, i1 - i0, T(0), alpha);
    });
    return;
  }
  if (g.S < kMinPlane) {
    // Rows of R = C*S: each chunk of rows sums its columns into its own accumulator row.
    const std::vector<T> row = g.S == 1 ? std::vector<T>() : expand_bias(b, g);
    const T* br = g.S == 1 ? b : row.data();
    const int64_t R = g.C * g.S;
    const int64_t min_rows = std::max<int64_t>(1, kBlock / R);
    const int64_t chunks = std::max<int64_t>(1, std::min(kMaxRowChunks, g.N / min_rows));
    std::vector<T> partial(static_cast<size_t>(chunks * R), T(0));
    at::parallel_for(0, chunks, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t r0 = g.N * k / chunks, r1 = g.N * (k + 1) / chunks;
        tab.bwd_rows[a](gr + r0 * R, x + r0 * R, br, gx + r0 * R, partial.data() + k * R,
                        r1 - r0, R, alpha);
      }
    });
    for (int64_t k = 1; k < chunks; ++k)
      for (int64_t j = 0; j < R; ++j) partial[j] += partial[k * R + j];
    for (int64_t c = 0; c < g.C; ++c) {
      T sum = T(0);
      for (int64_t s = 0; s < g.S; ++s) sum += partial[c * g.S + s];
      gb[c] = sum;
    }
    return;
  }
  // Long planes, each cut into fixed-size pieces so that one long plane still uses every core.
  const int64_t planes = g.N * g.C;
  const int64_t pieces = (g.S + kBlock - 1) / kBlock;
  std::vector<T> partial(static_cast<size_t>(planes * pieces), T(0));
  at::parallel_for(0, planes * pieces, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t plane = t / pieces, piece = t % pieces;
      const int64_t s0 = piece * kBlock, s1 = std::min(g.S, s0 + kBlock);
      const int64_t off = plane * g.S + s0;
      partial[t] = tab.bwd_plane[a](gr + off, x + off, gx + off, s1 - s0, b[plane % g.C], alpha);
    }
  });
  for (int64_t c = 0; c < g.C; ++c) gb[c] = T(0);
  for (int64_t t = 0; t < planes * pieces; ++t) gb[(t / pieces) % g.C] += partial[t];
}

// float/double run directly; half and bfloat16 are computed in float (PyTorch's opmath type)
// and rounded once at the end.
template <typename F>
void with_compute_type(const at::Tensor& x, F&& f) {
  const auto st = x.scalar_type();
  if (st == at::kDouble) {
    f(double{});
  } else {
    f(float{});
  }
}

at::Tensor to_compute(const at::Tensor& t) {
  if (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16)
    return t.to(at::kFloat).contiguous();
  return t.contiguous();
}

// The device half of BiasActOps (csrc/bias_act_ops.h).
struct CpuImpl {
  static at::Tensor forward(const at::Tensor& x, const at::Tensor& bias, Act act, double alpha) {
    const at::Tensor xc = to_compute(x);
    const at::Tensor bc = bias.defined() ? to_compute(bias) : at::Tensor();
    at::Tensor y = at::empty(xc.sizes(), xc.options());
    with_compute_type(xc, [&](auto zero) {
      using T = decltype(zero);
      cpu::forward<T>(xc.const_data_ptr<T>(), bc.defined() ? bc.const_data_ptr<T>() : nullptr,
                      y.mutable_data_ptr<T>(), geometry(xc), act, static_cast<T>(alpha));
    });
    return y.scalar_type() == x.scalar_type() ? y : y.to(x.scalar_type());
  }

  static std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& grad, const at::Tensor& x,
                                                     const at::Tensor& bias, Act act,
                                                     double alpha) {
    const at::Tensor gc = to_compute(grad);
    const at::Tensor xc = to_compute(x);
    const at::Tensor bc = bias.defined() ? to_compute(bias) : at::Tensor();
    at::Tensor gx = at::empty(xc.sizes(), xc.options());
    const Geometry geo = geometry(xc);
    at::Tensor gb = bc.defined() ? at::empty({geo.C}, bc.options()) : at::Tensor();
    with_compute_type(xc, [&](auto zero) {
      using T = decltype(zero);
      cpu::backward<T>(gc.const_data_ptr<T>(), xc.const_data_ptr<T>(),
                       bc.defined() ? bc.const_data_ptr<T>() : nullptr, gx.mutable_data_ptr<T>(),
                       gb.defined() ? gb.mutable_data_ptr<T>() : nullptr, geo, act,
                       static_cast<T>(alpha));
    });
    if (gx.scalar_type() != x.scalar_type()) gx = gx.to(x.scalar_type());
    if (gb.defined() && gb.scalar_type() != x.scalar_type()) gb = gb.to(x.scalar_type());
    return {gx, gb};
  }
};

}  // namespace
}  // namespace cpu
}  // namespace lightdl

TORCH_LIBRARY_IMPL(lightdl, CPU, m) {
  lightdl::BiasActOps<lightdl::cpu::CpuImpl>::register_kernels(m);
}

// CPU GEMM path of fused_conv1d (declared in csrc/conv1d_gemm.h): one block of the batch per
// thread, each block one matrix product each way, with our own im2col / col2im and
// transposing copies around MKL.
//
// Layout (per block of N batch elements): cols is (C * K, N * Lo), row (c, k) holding
// x[n, c, l * S + k * D - P] (0 in the padding) at column n * Lo + l. Then
//   forward:      pre  = W (O, C K) @ cols,        out[n, o, l] = pre[o, n Lo + l] + b[o]
//   grad_weight:  gW   = gz2 (O, N Lo) @ cols^T,   gz2[o, n Lo + l] = gz[n, o, l]
//   grad_input:   gcol = W^T @ gz2,                gx = col2im(gcol)
// One GEMM over N * Lo columns keeps MKL at its rate when Lo alone is short (15-60 on the
// RR-interval windows), which per-sample products would not. The copies are memory-bound
// passes over buffers the size of the output (cols: C * K times the output length), which is
// why the dispatch rule sends only short series here. The weight and bias gradients are
// summed per block, then over the blocks in block order.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cstring>

#include "../conv1d_gemm.h"
#include "../conv1d_math.h"
#include "blocks.h"

namespace lightdl::cpu {
namespace {

struct Geom {
  int64_t N, C, O, K, L, Lo, S, P, D;
  int64_t NL() const { return N * Lo; }
  // Output positions [lo, hi) whose tap k reads inside the input: 0 <= l S + k D - P < L.
  void valid(int64_t k, int64_t& lo, int64_t& hi) const {
    const int64_t q = k * D - P;
    lo = q >= 0 ? 0 : (-q + S - 1) / S;
    hi = L - 1 - q < 0 ? 0 : (L - 1 - q) / S + 1;
    lo = std::min(lo, Lo);
    hi = std::clamp(hi, lo, Lo);
  }
};

Geom geom(const at::Tensor& x, const at::Tensor& w, Conv1dArgs a) {
  const int64_t L = x.size(2), K = w.size(2);
  return {x.size(0), x.size(1), w.size(0), K, L,
          conv1d_out_len(L, K, a.stride, a.padding, a.dilation), a.stride, a.padding,
          a.dilation};
}

// Rows per parallel_for grain for rows of `per_row` elements. (Loops run over rows with the
// batch inside, so that no index is divided per short segment: a 64-bit division per
// 30-element copy cost more than the copy.)
int64_t grain(int64_t per_row) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(per_row, 1));
}

template <typename T>
void im2col(const T* x, T* cols, const Geom& g) {
  at::parallel_for(0, g.C * g.K, grain(g.NL()), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t c = row / g.K, k = row % g.K;
      const int64_t q = k * g.D - g.P;  // input position of output 0
      int64_t lo, hi;
      g.valid(k, lo, hi);
      for (int64_t n = 0; n < g.N; ++n) {
        const T* src = x + (n * g.C + c) * g.L;
        T* dst = cols + row * g.NL() + n * g.Lo;
        std::fill(dst, dst + lo, T(0));
        if (g.S == 1) {
          if (hi > lo) std::memcpy(dst + lo, src + lo + q, sizeof(T) * (hi - lo));
        } else {
          for (int64_t l = lo; l < hi; ++l) dst[l] = src[l * g.S + q];
        }
        std::fill(dst + hi, dst + g.Lo, T(0));
      }
    }
  });
}

template <typename T>
void col2im(const T* __restrict__ gcols, T* __restrict__ gx, const Geom& g) {
  at::parallel_for(0, g.C, grain(g.N * g.K * g.Lo), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      for (int64_t n = 0; n < g.N; ++n) {
        T* __restrict__ row = gx + (n * g.C + c) * g.L;
        std::fill(row, row + g.L, T(0));
        for (int64_t k = 0; k < g.K; ++k) {
          const T* __restrict__ src = gcols + (c * g.K + k) * g.NL() + n * g.Lo;
          const int64_t q = k * g.D - g.P;
          int64_t lo, hi;
          g.valid(k, lo, hi);
          if (g.S == 1) {
            for (int64_t l = lo; l < hi; ++l) row[l + q] += src[l];
          } else {
            for (int64_t l = lo; l < hi; ++l) row[l * g.S + q] += src[l];
          }
        }
      }
    }
  });
}

// (O, N Lo) -> (N, O, Lo), adding b[o] on the way when given.
template <typename T>
void unfold_rows(const T* __restrict__ pre, const T* b, T* __restrict__ out, const Geom& g) {
  at::parallel_for(0, g.O, grain(g.NL()), [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      const T bo = b ? b[o] : T(0);
      for (int64_t n = 0; n < g.N; ++n) {
        const T* __restrict__ src = pre + o * g.NL() + n * g.Lo;
        T* __restrict__ dst = out + (n * g.O + o) * g.Lo;
        for (int64_t l = 0; l < g.Lo; ++l) dst[l] = src[l] + bo;
      }
    }
  });
}

// (N, O, Lo) -> (O, N Lo).
template <typename T>
void fold_rows(const T* gz, T* gz2, const Geom& g) {
  at::parallel_for(0, g.O, grain(g.NL()), [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      for (int64_t n = 0; n < g.N; ++n)
        std::memcpy(gz2 + o * g.NL() + n * g.Lo, gz + (n * g.O + o) * g.Lo, sizeof(T) * g.Lo);
    }
  });
}

// Blocks of batch elements, one per thread (for_blocks, blocks.h), each running its copies
// and its products on its own thread (MKL single-threaded, the loops' own parallel_for
// inline): MKL's two-thread GEMM on these small products lost to oneDNN inside a training
// step (af_cnn, 2 threads).
int64_t batch_blocks(int64_t N) {
  return std::max<int64_t>(1, std::min<int64_t>(N, at::get_num_threads()));
}

// The geometry of batch elements [n0, n1).
Geom sub(Geom g, int64_t n0, int64_t n1) {
  g.N = n1 - n0;
  return g;
}

}  // namespace

at::Tensor conv1d_gemm_forward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                               Conv1dArgs a) {
  const Geom g = geom(x, w, a);
  const at::Tensor w2 = w.view({g.O, g.C * g.K});
  at::Tensor out = at::empty({g.N, g.O, g.Lo}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv1d_gemm_forward", [&] {
    using T = scalar_t;
    const T* xp = x.const_data_ptr<T>();
    const T* bp = b.defined() ? b.const_data_ptr<T>() : nullptr;
    T* op = out.mutable_data_ptr<T>();
    for_blocks(batch_blocks(g.N), g.N, [&](int64_t, int64_t n0, int64_t n1) {
      const Geom s = sub(g, n0, n1);
      if (s.N == 0) return;
      at::Tensor cols = at::empty({g.C * g.K, s.NL()}, x.options());
      im2col(xp + n0 * g.C * g.L, cols.mutable_data_ptr<T>(), s);
      const at::Tensor pre = at::mm(w2, cols);
      unfold_rows(pre.const_data_ptr<T>(), bp, op + n0 * g.O * g.Lo, s);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv1d_gemm_backward(const at::Tensor& gz_in,
                                                                    const at::Tensor& x,
                                                                    const at::Tensor& w,
                                                                    Conv1dArgs a,
                                                                    std::array<bool, 3> mask) {
  const Geom g = geom(x, w, a);
  const at::Tensor gz = gz_in.contiguous();
  const at::Tensor w2t = w.view({g.O, g.C * g.K}).t();
  const int64_t P = batch_blocks(g.N);
  // Per-block partial weight and bias gradients, summed in block order at the end.
  at::Tensor gx = mask[0] ? at::empty({g.N, g.C, g.L}, x.options()) : at::Tensor();
  at::Tensor gw_parts = mask[1] ? at::zeros({P, g.O, g.C * g.K}, x.options()) : at::Tensor();
  at::Tensor gb_parts = mask[2] ? at::zeros({P, g.O}, x.options()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv1d_gemm_backward", [&] {
    using T = scalar_t;
    const T* xp = x.const_data_ptr<T>();
    const T* gzp = gz.const_data_ptr<T>();
    for_blocks(P, g.N, [&](int64_t p, int64_t n0, int64_t n1) {
      const Geom s = sub(g, n0, n1);
      if (s.N == 0) return;
      at::Tensor gz2 = at::empty({g.O, s.NL()}, x.options());
      fold_rows(gzp + n0 * g.O * g.Lo, gz2.mutable_data_ptr<T>(), s);
      if (mask[0]) {
        const at::Tensor gcols = at::mm(w2t, gz2);
        col2im(gcols.const_data_ptr<T>(), gx.mutable_data_ptr<T>() + n0 * g.C * g.L, s);
      }
      if (mask[1]) {
        at::Tensor cols = at::empty({g.C * g.K, s.NL()}, x.options());
        im2col(xp + n0 * g.C * g.L, cols.mutable_data_ptr<T>(), s);
        at::Tensor part = gw_parts.select(0, p);
        at::mm_out(part, gz2, cols.t());
      }
      if (mask[2]) {
        at::Tensor part = gb_parts.select(0, p);
        at::sum_out(part, gz2, {1});
      }
    });
  });
  at::Tensor gw, gb;
  if (mask[1]) gw = (P == 1 ? gw_parts.select(0, 0) : gw_parts.sum(0)).view({g.O, g.C, g.K});
  if (mask[2]) gb = P == 1 ? gb_parts.select(0, 0) : gb_parts.sum(0);
  return {gx, gw, gb};
}

}  // namespace lightdl::cpu

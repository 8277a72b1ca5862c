// Inner loops of lightdl::bn_act_pool1d's batch norm on CPU (table: csrc/cpu/bn_table.h),
// compiled once per instruction set (csrc/cpu/bn_isa_*.cpp) like act_pool_kernels.h.
//
// Per-channel sums run in vector accumulators (GCC vector types, kept in registers): written
// as scalar loops over lane arrays GCC left them scalar, ~4x slower at af_cnn's row length of
// 60. A row's last elements (fewer than fill a 16-byte vector) go to a scalar. Every sum runs
// in an order fixed by the shape, whatever the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "aligned_vec.h"
#include "bn_table.h"
#include "vec64.h"

#ifndef LIGHTDL_ISA
#error "define LIGHTDL_ISA before including bn_kernels.h"
#endif

namespace lightdl {
namespace cpu {
namespace LIGHTDL_ISA {
namespace {

// LIGHTDL_BN_VEC (set per ISA build): the bytes of the widest accumulator, one register of the
// ISA. The AVX2 and SSE2 builds once used 64-byte vectors too, which GCC split and spilled:
// on an AVX2 CPU (AMD EPYC, one thread, 64 x 32 x 60) the op's forward took 2.1x and its
// backward 1.8x the time it takes with 32-byte ones.
#ifndef LIGHTDL_BN_VEC
#define LIGHTDL_BN_VEC 16
#endif

// Accumulators of one register, half and a quarter of one (never below 16 bytes: a level as
// wide as the one above it can never be used, see over_row).
template <typename T>
struct Vecs {
  static constexpr int kBytes = LIGHTDL_BN_VEC;
  static constexpr int kHalf = std::max(16, kBytes / 2), kQuarter = std::max(16, kBytes / 4);
  using V = typename VecN<T, kBytes>::type;
  using H = typename VecN<T, kHalf>::type;
  using Q = typename VecN<T, kQuarter>::type;
  static constexpr int kV = kBytes / static_cast<int>(sizeof(T));
  static constexpr int kH = kHalf / static_cast<int>(sizeof(T));
  static constexpr int kQ = kQuarter / static_cast<int>(sizeof(T));
};

template <typename V>
inline auto lanes(const V& v) {
  auto t = v[0];
  for (size_t j = 1; j < sizeof(V) / sizeof(v[0]); ++j) t += v[j];
  return t;
}

// Sums of one channel in vectors of one register, half and a quarter of one (see Vecs) and
// a scalar (a row's tail).
template <typename T>
struct Acc {
  typename Vecs<T>::V v{};
  typename Vecs<T>::H h{};
  typename Vecs<T>::Q q{};
  T t = T(0);
  T total() const { return lanes(v) + lanes(h) + lanes(q) + t; }
};

// acc += f(l) over a row, where f loads (a vector or scalar) at position l: f(tag, l).
template <typename T, typename F>
inline void over_row(int64_t L, Acc<T>& acc, F&& f) {
  using V = typename Vecs<T>::V;
  using H = typename Vecs<T>::H;
  using Q = typename Vecs<T>::Q;
  int64_t l = 0;
  for (; l + Vecs<T>::kV <= L; l += Vecs<T>::kV) acc.v += f(V{}, l);
  if (l + Vecs<T>::kH <= L) {
    acc.h += f(H{}, l);
    l += Vecs<T>::kH;
  }
  if (l + Vecs<T>::kQ <= L) {
    acc.q += f(Q{}, l);
    l += Vecs<T>::kQ;
  }
  for (; l < L; ++l) acc.t += f(T{}, l);
}

// A channel's sum in two levels: the vector accumulators (Acc) take about kFlush elements,
// then their total goes into a double. One level summed N * L elements per lane in one
// float32 run: at 256 x 8 x 2000 the running variance was 1.3e-5 off float64 and the output
// 7.5e-6 (torch's: 1e-7), now as torch's. A flush is a horizontal sum: after every
// flush_rows(L) batch elements for all channels at once (checked per row, the bookkeeping
// cost 14% of the op's time at 64 x 64 x 30), or within a row longer than kFlush.
constexpr int64_t kFlush = 4096;

inline int64_t flush_rows(int64_t L) { return std::max<int64_t>(1, kFlush / std::max<int64_t>(L, 1)); }

template <typename T>
struct Sum {
  Acc<T> acc;
  double total = 0;

  // acc += f(l) for l in [0, L) (see over_row).
  template <typename F>
  void row(int64_t L, F&& f) {
    if (L <= kFlush) return over_row<T>(L, acc, f);
    for (int64_t l0 = 0; l0 < L; l0 += kFlush) {
      over_row<T>(std::min(kFlush, L - l0), acc,
                  [&](auto tag, int64_t l) { return f(tag, l0 + l); });
      flush();
    }
  }
  void flush() {
    total += static_cast<double>(acc.total());
    acc = Acc<T>{};
  }
  T value() const { return static_cast<T>(total + static_cast<double>(acc.total())); }
};

// After batch element n: the flush of every channel's sums that is due (see Sum).
template <typename T>
inline void flush_after(int64_t n, int64_t L, AlignedVector<Sum<T>>& acc) {
  if ((n + 1) % flush_rows(L) != 0) return;
  for (auto& a : acc) a.flush();
}

// The loops below run over the rows in memory order (n outer, channel inner), each channel
// of the block with its own accumulators: a channel's rows are C * L apart. (Walked channel by
// channel, these loops took 11% of af_cnn's training step under perf, where x is not in cache;
// memory order took the fused step's speed-up from 1.24x to 1.34x in one measurement. With x
// hot in L2 both orders time the same.)
template <typename T>
void stats(const T* __restrict x, int64_t N, int64_t C, int64_t L, int64_t c0, int64_t c1,
           T* __restrict mean, T* __restrict var) {
  const T inv_n = T(1) / static_cast<T>(N * L);
  AlignedVector<Sum<T>> acc(static_cast<size_t>(c1 - c0));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = c0; c < c1; ++c) {
      const T* r = x + (n * C + c) * L;
      acc[c - c0].row(L, [&](auto tag, int64_t l) { return load_as<decltype(tag)>(r + l); });
    }
    flush_after(n, L, acc);
  }
  for (int64_t c = c0; c < c1; ++c) {
    mean[c] = acc[c - c0].value() * inv_n;
    acc[c - c0] = Sum<T>{};
  }
  // A second pass over data still in cache: no cancellation as in E[x^2] - m^2.
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = c0; c < c1; ++c) {
      const T* r = x + (n * C + c) * L;
      const T m = mean[c];
      acc[c - c0].row(L, [&](auto tag, int64_t l) {
        const auto d = load_as<decltype(tag)>(r + l) - m;
        return d * d;
      });
    }
    flush_after(n, L, acc);
  }
  for (int64_t c = c0; c < c1; ++c) var[c] = acc[c - c0].value() * inv_n;
}

template <typename T>
void affine(const T* __restrict x, T* __restrict z, int64_t C, int64_t L, int64_t r0,
            int64_t r1, const T* __restrict scale, const T* __restrict shift) {
  int64_t c = r0 % C;
  for (int64_t r = r0; r < r1; ++r) {
    const T a = scale[c], b = shift[c];
    const T* xr = x + r * L;
    T* zr = z + r * L;
    for (int64_t l = 0; l < L; ++l) zr[l] = xr[l] * a + b;
    if (++c == C) c = 0;
  }
}

template <typename T>
void grad(const T* __restrict dz, const T* __restrict x, T* __restrict gx, int64_t N, int64_t C,
          int64_t L, int64_t c0, int64_t c1, const T* __restrict mean, const T* __restrict var,
          const T* __restrict w, T eps, bool training, T* __restrict sums) {
  const T inv_n = T(1) / static_cast<T>(N * L);
  const int64_t nc = c1 - c0;
  AlignedVector<Sum<T>> acc(static_cast<size_t>(2 * nc));  // sum dz, sum dz (x - m)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t o = (n * C + c) * L;
      const T *d = dz + o, *xr = x + o;
      const T m = mean[c];
      acc[c - c0].row(L, [&](auto tag, int64_t l) { return load_as<decltype(tag)>(d + l); });
      acc[nc + c - c0].row(L, [&](auto tag, int64_t l) {
        using V = decltype(tag);
        return load_as<V>(d + l) * (load_as<V>(xr + l) - m);
      });
    }
    flush_after(n, L, acc);
  }
  // Per channel: gx = a dz + b x + e (see below).
  std::vector<T> coef(static_cast<size_t>(3 * nc));
  for (int64_t c = c0; c < c1; ++c) {
    const T m = mean[c], inv = T(1) / std::sqrt(var[c] + eps);
    const T sdz = acc[c - c0].value(), sdzx = acc[nc + c - c0].value() * inv;
    sums[c] = sdz;  // grad_bias
    sums[C + c] = sdzx;  // grad_weight: sum dz xhat
    // training: gx = wi (dz - sdz / n - xhat sdzx / n) = dz wi + x cx + cb, with
    // cx = -wi inv sdzx / n and cb = -wi sdz / n - m cx;  eval: gx = dz wi.
    const T wi = (w != nullptr ? w[c] : T(1)) * inv;
    const T cx = training ? -wi * inv * sdzx * inv_n : T(0);
    coef[3 * (c - c0)] = wi;
    coef[3 * (c - c0) + 1] = cx;
    coef[3 * (c - c0) + 2] = training ? -wi * sdz * inv_n - m * cx : T(0);
  }
  if (gx == nullptr) return;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t o = (n * C + c) * L;
      const T *d = dz + o, *xr = x + o;
      T* g = gx + o;
      const T a = coef[3 * (c - c0)], b = coef[3 * (c - c0) + 1], e = coef[3 * (c - c0) + 2];
      for (int64_t l = 0; l < L; ++l) g[l] = d[l] * a + xr[l] * b + e;
    }
}

template <typename T>
BnTable<T> make_bn_table() {
  return {&stats<T>, &affine<T>, &grad<T>};
}

}  // namespace

const BnTable<float>& bn_table_f32() {
  static const BnTable<float> t = make_bn_table<float>();
  return t;
}
const BnTable<double>& bn_table_f64() {
  static const BnTable<double> t = make_bn_table<double>();
  return t;
}

}  // namespace LIGHTDL_ISA
}  // namespace cpu
}  // namespace lightdl

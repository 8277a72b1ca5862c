// Inner loops of the CPU act_pool1d for stride == kernel_size and no padding, over raw
// float/double pointers. Compiled once per instruction set (csrc/cpu/act_pool_isa_*.cpp, the
// scheme of bias_act_kernels.h): no torch code here, so the compiler vectorises them for that
// ISA. Every choice is a select, not a branch: a ReLU output compared with its neighbour is a
// coin flip, and as branches these loops ran 15x slower than torch.relu alone.
#pragma once

#include <cstdint>

#include "../activations.h"
#include "../pool_math.h"
#include "act_pool_table.h"

#ifndef LIGHTDL_ISA
#error "define LIGHTDL_ISA before including act_pool_kernels.h"
#endif

namespace lightdl {
namespace cpu {
namespace LIGHTDL_ISA {
namespace {

// KK: K as a compile-time constant, or 0 (runtime K).
template <Act A, Pool PK, int KK, typename T>
void fwd(const T* __restrict x, T* __restrict y, int64_t n, int64_t K_rt, T alpha) {
  const int64_t K = KK > 0 ? KK : K_rt;
  const T inv_k = T(1) / static_cast<T>(K);
  for (int64_t o = 0; o < n; ++o) {
    const T* w = x + o * K;
    T m = ActMath<A>::fwd(w[0], alpha);
    for (int64_t j = 1; j < K; ++j) {
      const T v = ActMath<A>::fwd(w[j], alpha);
      if constexpr (PK == Pool::Max) {
        m = (v > m || pool_isnan(v)) ? v : m;  // first maximum, NaN wins (pool_math.h)
      } else {
        m += v;
      }
    }
    y[o] = PK == Pool::Max ? m : m * inv_k;
  }
}

template <Act A, Pool PK, int KK, typename T>
void bwd(const T* __restrict grad, const T* __restrict x, T* __restrict gx, int64_t n,
         int64_t K_rt, T alpha) {
  const int64_t K = KK > 0 ? KK : K_rt;
  const T inv_k = T(1) / static_cast<T>(K);
  for (int64_t o = 0; o < n; ++o) {
    const T* w = x + o * K;
    T* gw = gx + o * K;
    if constexpr (PK == Pool::Max && KK == 2) {
      // Written out for K = 2, selecting the incoming gradient (0 at the other position, which
      // then gets 0 * act', exactly as the reference's pool backward then act backward): a
      // select after act' or an argmax index stopped GCC's vectoriser.
      const T a = ActMath<A>::fwd(w[0], alpha), b = ActMath<A>::fwd(w[1], alpha);
      const bool second = (b > a) | (b != b);
      const T go0 = second ? T(0) : grad[o];
      const T go1 = second ? grad[o] : T(0);
      gw[0] = go0 * ActMath<A>::grad(w[0], alpha);
      gw[1] = go1 * ActMath<A>::grad(w[1], alpha);
    } else if constexpr (PK == Pool::Max) {
      int64_t arg = 0;
      T m = ActMath<A>::fwd(w[0], alpha);
      for (int64_t j = 1; j < K; ++j) {
        const T v = ActMath<A>::fwd(w[j], alpha);
        const bool take = (v > m) | pool_isnan(v);
        m = take ? v : m;
        arg = take ? j : arg;
      }
      for (int64_t j = 0; j < K; ++j)
        gw[j] = j == arg ? grad[o] * ActMath<A>::grad(w[j], alpha) : T(0);
    } else {
      const T go = grad[o] * inv_k;
      for (int64_t j = 0; j < K; ++j) gw[j] = go * ActMath<A>::grad(w[j], alpha);
    }
  }
}

template <Act A, typename T>
void fill(ActPoolTable<T>& t) {
  const int a = static_cast<int>(A);
  t.fwd[a][0][0] = &fwd<A, Pool::Max, 0, T>;
  t.fwd[a][0][1] = &fwd<A, Pool::Max, 2, T>;
  t.fwd[a][1][0] = &fwd<A, Pool::Avg, 0, T>;
  t.fwd[a][1][1] = &fwd<A, Pool::Avg, 2, T>;
  t.bwd[a][0][0] = &bwd<A, Pool::Max, 0, T>;
  t.bwd[a][0][1] = &bwd<A, Pool::Max, 2, T>;
  t.bwd[a][1][0] = &bwd<A, Pool::Avg, 0, T>;
  t.bwd[a][1][1] = &bwd<A, Pool::Avg, 2, T>;
}

template <typename T>
ActPoolTable<T> make_table() {
  ActPoolTable<T> t{};
  fill<Act::Identity, T>(t);
  fill<Act::ReLU, T>(t);
  fill<Act::LeakyReLU, T>(t);
  fill<Act::Sigmoid, T>(t);
  fill<Act::Tanh, T>(t);
  fill<Act::GELU, T>(t);
  fill<Act::GELUTanh, T>(t);
  fill<Act::SiLU, T>(t);
  fill<Act::Step, T>(t);
  fill<Act::Sign, T>(t);
  return t;
}

}  // namespace

const ActPoolTable<float>& act_pool_table_f32() {
  static const ActPoolTable<float> t = make_table<float>();
  return t;
}
const ActPoolTable<double>& act_pool_table_f64() {
  static const ActPoolTable<double> t = make_table<double>();
  return t;
}

}  // namespace LIGHTDL_ISA
}  // namespace cpu
}  // namespace lightdl

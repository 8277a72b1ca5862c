// Function table of the CPU batch-norm loops of lightdl::bn_act_pool1d (csrc/bn_act_pool.cpp),
// one per instruction set and dtype, filled in csrc/cpu/bn_kernels.h (compiled per ISA like
// the act_pool1d loops). x is (N, C, L) contiguous; a channel is N rows of L, C * L apart.
#pragma once

#include <cstdint>

namespace lightdl {
namespace cpu {

template <typename T>
struct BnTable {
  // mean[c], var[c] (biased) of channels [c0, c1).
  void (*stats)(const T* x, int64_t N, int64_t C, int64_t L, int64_t c0, int64_t c1, T* mean,
                T* var);
  // z = x * scale[c] + shift[c] for rows [r0, r1) of the (N * C, L) view.
  void (*affine)(const T* x, T* z, int64_t C, int64_t L, int64_t r0, int64_t r1, const T* scale,
                 const T* shift);
  // For channels [c0, c1): sums[c] = sum dz, sums[C + c] = sum dz * xhat, and (gx not null)
  // grad_x from dz (see csrc/bn_act_pool.cpp); w null means 1.
  void (*grad)(const T* dz, const T* x, T* gx, int64_t N, int64_t C, int64_t L, int64_t c0,
               int64_t c1, const T* mean, const T* var, const T* w, T eps, bool training,
               T* sums);
};

#define LIGHTDL_DECLARE_BN_ISA(ISA)           \
  namespace ISA {                             \
  const BnTable<float>& bn_table_f32();       \
  const BnTable<double>& bn_table_f64();      \
  }
LIGHTDL_DECLARE_BN_ISA(isa_default)
LIGHTDL_DECLARE_BN_ISA(isa_avx2)
LIGHTDL_DECLARE_BN_ISA(isa_avx512)
#undef LIGHTDL_DECLARE_BN_ISA

}  // namespace cpu
}  // namespace lightdl

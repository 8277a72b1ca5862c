// Function tables of the CPU act_pool1d inner loops for the common case stride == kernel_size,
// no padding (windows are consecutive runs of K elements), one table per instruction set and
// dtype (filled in csrc/cpu/act_pool_kernels.h, compiled per ISA like the bias_act loops).
// Indexed [act][pool][K == 2 ? 1 : 0]: K = 2 is compiled as a constant.
#pragma once

#include <cstdint>

#include "bias_act_table.h"  // kNumActs

namespace lightdl {
namespace cpu {

template <typename T>
struct ActPoolTable {
  // y[o] = pool over j < K of act(x[o K + j]), o < n.
  void (*fwd[kNumActs][2][2])(const T* x, T* y, int64_t n, int64_t K, T alpha);
  // gx[o K + j] = act'(x[o K + j]) * (grad[o] at window o's argmax, 0 elsewhere (max);
  // grad[o] / K (avg)), o < n.
  void (*bwd[kNumActs][2][2])(const T* grad, const T* x, T* gx, int64_t n, int64_t K, T alpha);
};

const ActPoolTable<float>& act_pool_table_f32();
const ActPoolTable<double>& act_pool_table_f64();

#define LIGHTDL_DECLARE_POOL_ISA(ISA)               \
  namespace ISA {                                   \
  const ActPoolTable<float>& act_pool_table_f32();  \
  const ActPoolTable<double>& act_pool_table_f64(); \
  }
LIGHTDL_DECLARE_POOL_ISA(isa_default)
LIGHTDL_DECLARE_POOL_ISA(isa_avx2)
LIGHTDL_DECLARE_POOL_ISA(isa_avx512)
#undef LIGHTDL_DECLARE_POOL_ISA

}  // namespace cpu
}  // namespace lightdl

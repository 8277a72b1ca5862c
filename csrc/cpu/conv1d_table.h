// Function tables of the CPU direct-convolution inner loops, one table per instruction set and
// dtype (filled in csrc/cpu/conv1d_kernels.h, compiled per ISA like the bias_act loops).
// Every function works on one batch element or one range of output channels; the caller
// (csrc/cpu/conv1d.cpp) runs them in parallel with at::parallel_for.
#pragma once

#include <cstdint>

#include "../conv1d_math.h"
#include "bias_act_table.h"  // kNumActs

namespace lightdl {
namespace cpu {

template <typename T>
struct Conv1dTable {
  // One batch element, output channels [o0, o1): out = act(conv(xp, w) + b); pre (may be
  // null) = conv(xp, w) without bias. xp: (C, Lp) padded input; out, pre: (O, Lo).
  void (*fwd[kNumActs])(const T* xp, const T* w, const T* b, T* out, T* pre,
                        const Conv1dGeom& g, int64_t o0, int64_t o1, T alpha);
  // One batch element: gxp (C, Lp) = the gradient of the padded input from gz (O, Lo).
  void (*bwd_input)(const T* gz, const T* w, T* gxp, const Conv1dGeom& g);
  // Output channels [o0, o1), summed over the whole batch in batch order: gw (O, C, K) and,
  // when gb is not null, gb (O,) = sum of gz. gz: (N, O, Lo); xp: (N, C, Lp).
  void (*bwd_weight)(const T* gz, const T* xp, T* gw, T* gb, const Conv1dGeom& g, int64_t o0,
                     int64_t o1);
};

const Conv1dTable<float>& conv1d_table_f32();
const Conv1dTable<double>& conv1d_table_f64();

#define LIGHTDL_DECLARE_CONV_ISA(ISA)               \
  namespace ISA {                                   \
  const Conv1dTable<float>& conv1d_table_f32();     \
  const Conv1dTable<double>& conv1d_table_f64();    \
  }
LIGHTDL_DECLARE_CONV_ISA(isa_default)
LIGHTDL_DECLARE_CONV_ISA(isa_avx2)
LIGHTDL_DECLARE_CONV_ISA(isa_avx512)
#undef LIGHTDL_DECLARE_CONV_ISA

}  // namespace cpu
}  // namespace lightdl

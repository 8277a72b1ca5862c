// Function tables of the CPU direct-convolution inner loops, one table per instruction set and
// dtype (filled in csrc/cpu/conv1d_kernels.h, compiled per ISA like the bias_act loops).
// The caller (csrc/cpu/conv1d.cpp) runs them in parallel with at::parallel_for. Inputs are
// in the phased layout of csrc/conv1d_math.h: xph (N, C, S * Lph).
#pragma once

#include <cstdint>

#include "../conv1d_math.h"
#include "bias_act_table.h"  // kNumActs

namespace lightdl {
namespace cpu {

template <typename T>
struct Conv1dTable {
  // out (N, O, Lo) = act(conv(x, w) + b) for the tasks [t0, t1) of (batch element n, block
  // of `block` output channels), task t = n * ceil(O / block) + block index; b may be null.
  void (*fwd[kNumActs])(const T* xph, const T* w, const T* b, T* out, const Conv1dGeom& g,
                        int64_t t0, int64_t t1, int64_t block, T alpha);
  // Batch elements [n0, n1), the whole backward in one pass over `grad` (N, O, Lo):
  // gz = grad * act'(z + b) with the pre-activation row z recomputed in L1, or, for the
  // *FromOutput acts, gz = grad * act'(y) from the forward's output `saved` (N, O, Lo; null
  // otherwise); then gb_acc[o] += sum gz, gw_acc[o, c, k] += gz . x (each null when not
  // wanted) and, when gx is not null, gx[n] (C, L) = conv^T(gz).
  // Scratch: gxph (C * S * Lph) and zrow (4 * Lo).
  void (*bwd[kNumActs])(const T* grad, const T* xph, const T* w, const T* b, const T* saved,
                        T* gx, T* gw_acc, T* gb_acc, T* gxph, T* zrow, const Conv1dGeom& g,
                        int64_t n0, int64_t n1, T alpha);
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

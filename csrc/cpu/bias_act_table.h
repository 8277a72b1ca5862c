// Function tables of the CPU bias+activation inner loops, one table per instruction set and
// dtype, indexed by lightdl::Act. Filled in csrc/cpu/bias_act_kernels.h.
#pragma once

#include <cstdint>

namespace lightdl {
namespace cpu {

constexpr int kNumActs = 14;  // lightdl::Act, including the *FromOutput variants

template <typename T>
struct BiasActTable {
  void (*fwd_plane[kNumActs])(const T* x, T* y, int64_t n, T b, T alpha);
  void (*fwd_rows[kNumActs])(const T* x, const T* b, T* y, int64_t rows, int64_t C, T alpha);
  T (*bwd_plane[kNumActs])(const T* g, const T* x, T* gx, int64_t n, T b, T alpha);
  void (*bwd_rows[kNumActs])(const T* g, const T* x, const T* b, T* gx, T* acc, int64_t rows,
                             int64_t C, T alpha);
};

// The table for the best instruction set this CPU supports (csrc/cpu/isa.cpp).
const BiasActTable<float>& bias_act_table_f32();
const BiasActTable<double>& bias_act_table_f64();

#define LIGHTDL_DECLARE_ISA(ISA)                  \
  namespace ISA {                                 \
  const BiasActTable<float>& table_f32();         \
  const BiasActTable<double>& table_f64();        \
  }
LIGHTDL_DECLARE_ISA(isa_default)
LIGHTDL_DECLARE_ISA(isa_avx2)
LIGHTDL_DECLARE_ISA(isa_avx512)
#undef LIGHTDL_DECLARE_ISA

}  // namespace cpu
}  // namespace lightdl

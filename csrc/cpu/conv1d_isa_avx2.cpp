// AVX2+FMA build of the direct conv1d inner loops; only called when the CPU reports both.
#if defined(__x86_64__) && defined(__GNUC__)
#include "isa_prelude.h"  // before the pragma: see the header
#pragma GCC target("avx2,fma,f16c")
#define LIGHTDL_ISA isa_avx2
#define LIGHTDL_CONV1D_VEC 32  // one ymm register per vector
#include "conv1d_kernels.h"
#else
#include "conv1d_table.h"
namespace lightdl::cpu::isa_avx2 {
const Conv1dTable<float>& conv1d_table_f32() { return isa_default::conv1d_table_f32(); }
const Conv1dTable<double>& conv1d_table_f64() { return isa_default::conv1d_table_f64(); }
}  // namespace lightdl::cpu::isa_avx2
#endif

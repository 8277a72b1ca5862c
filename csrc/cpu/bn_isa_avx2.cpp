// AVX2+FMA build of the bn_act_pool1d batch-norm loops; only called when the CPU reports both.
#if defined(__x86_64__) && defined(__GNUC__)
#include "isa_prelude.h"  // before the pragma: see the header
#pragma GCC target("avx2,fma,f16c")
#define LIGHTDL_ISA isa_avx2
#define LIGHTDL_BN_VEC 32  // one ymm register
#include "bn_kernels.h"
#else
#include "bn_table.h"
namespace lightdl::cpu::isa_avx2 {
const BnTable<float>& bn_table_f32() { return isa_default::bn_table_f32(); }
const BnTable<double>& bn_table_f64() { return isa_default::bn_table_f64(); }
}  // namespace lightdl::cpu::isa_avx2
#endif

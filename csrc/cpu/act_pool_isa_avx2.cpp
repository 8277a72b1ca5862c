// AVX2+FMA build of the act_pool1d inner loops; only called when the CPU reports both.
#if defined(__x86_64__) && defined(__GNUC__)
#include "isa_prelude.h"  // before the pragma: see the header
#pragma GCC target("avx2,fma,f16c")
#define LIGHTDL_ISA isa_avx2
#include "act_pool_kernels.h"
#else
#include "act_pool_table.h"
namespace lightdl::cpu::isa_avx2 {
const ActPoolTable<float>& act_pool_table_f32() { return isa_default::act_pool_table_f32(); }
const ActPoolTable<double>& act_pool_table_f64() { return isa_default::act_pool_table_f64(); }
}  // namespace lightdl::cpu::isa_avx2
#endif

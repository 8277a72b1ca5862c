// AVX2+FMA build of the CPU inner loops; only called when the CPU reports both (isa.cpp).
#if defined(__x86_64__) && defined(__GNUC__)
#include "isa_prelude.h"  // before the pragma: see the header
#pragma GCC target("avx2,fma,f16c")
#define LIGHTDL_ISA isa_avx2
#include "bias_act_kernels.h"
#else
#include "bias_act_table.h"
namespace lightdl::cpu::isa_avx2 {
const BiasActTable<float>& table_f32() { return isa_default::table_f32(); }
const BiasActTable<double>& table_f64() { return isa_default::table_f64(); }
}  // namespace lightdl::cpu::isa_avx2
#endif

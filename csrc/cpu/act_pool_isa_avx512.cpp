// AVX-512 build of the act_pool1d inner loops; only called when the CPU reports
// AVX512F/BW/DQ/VL (csrc/cpu/isa.cpp decides, for these loops and the bias_act ones alike).
#if defined(__x86_64__) && defined(__GNUC__)
#include "isa_prelude.h"  // before the pragma: see the header
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")
#define LIGHTDL_ISA isa_avx512
#include "act_pool_kernels.h"
#else
#include "act_pool_table.h"
namespace lightdl::cpu::isa_avx512 {
const ActPoolTable<float>& act_pool_table_f32() { return isa_default::act_pool_table_f32(); }
const ActPoolTable<double>& act_pool_table_f64() { return isa_default::act_pool_table_f64(); }
}  // namespace lightdl::cpu::isa_avx512
#endif

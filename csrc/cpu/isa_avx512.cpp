// AVX-512 build of the CPU inner loops; only called when the CPU reports AVX512F/BW/DQ/VL.
#if defined(__x86_64__) && defined(__GNUC__)
#include "isa_prelude.h"  // before the pragma: see the header
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")
#define LIGHTDL_ISA isa_avx512
#include "bias_act_kernels.h"
#else
#include "bias_act_table.h"
namespace lightdl::cpu::isa_avx512 {
const BiasActTable<float>& table_f32() { return isa_default::table_f32(); }
const BiasActTable<double>& table_f64() { return isa_default::table_f64(); }
}  // namespace lightdl::cpu::isa_avx512
#endif

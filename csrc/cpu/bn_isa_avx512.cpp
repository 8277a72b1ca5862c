// AVX-512 build of the bn_act_pool1d batch-norm loops; only called when the CPU reports
// AVX512F/BW/DQ/VL (csrc/cpu/isa.cpp decides).
#if defined(__x86_64__) && defined(__GNUC__)
#include "isa_prelude.h"  // before the pragma: see the header
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")
#define LIGHTDL_ISA isa_avx512
#define LIGHTDL_BN_VEC 64  // one zmm register
#include "bn_kernels.h"
#else
#include "bn_table.h"
namespace lightdl::cpu::isa_avx512 {
const BnTable<float>& bn_table_f32() { return isa_default::bn_table_f32(); }
const BnTable<double>& bn_table_f64() { return isa_default::bn_table_f64(); }
}  // namespace lightdl::cpu::isa_avx512
#endif

// Picks the instruction set of the CPU inner loops once, at first use. LIGHTDL_CPU_ISA
// (default|avx2|avx512) caps it, like ATEN_CPU_CAPABILITY does for PyTorch's own kernels.
#include <cstdlib>
#include <cstring>

#include "bias_act_table.h"

namespace lightdl {

namespace {
enum class Isa { Default, Avx2, Avx512 };

Isa detect() {
  Isa best = Isa::Default;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Isa::Avx2;
  if (best == Isa::Avx2 && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    best = Isa::Avx512;
#endif
  if (const char* cap = std::getenv("LIGHTDL_CPU_ISA")) {
    if (std::strcmp(cap, "default") == 0) best = Isa::Default;
    else if (std::strcmp(cap, "avx2") == 0 && best == Isa::Avx512) best = Isa::Avx2;
  }
  return best;
}

Isa isa() {
  static const Isa chosen = detect();
  return chosen;
}
}  // namespace

const char* cpu_isa() {
  switch (isa()) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "default";
  }
}

// Whether MKL's SGEMM runs kernels as wide as the ISA chosen here. MKL picks its 512-bit
// kernels on Intel CPUs only: on an AMD CPU with AVX-512 it runs its AVX2 ("zen") ones
// (mkl_blas_def_sgemm_kernel_0_zen in a profile on an AMD EPYC Zen 5, ~100 GFLOP/s on one core
// against ~250 for a 512-bit FMA loop), while oneDNN and our kernels use AVX-512 there.
bool mkl_matches_isa() {
  static const bool matches = [] {
    if (isa() != Isa::Avx512) return true;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_is("intel") != 0;
#else
    return true;
#endif
  }();
  return matches;
}

namespace cpu {
const BiasActTable<float>& bias_act_table_f32() {
  switch (isa()) {
    case Isa::Avx512: return isa_avx512::table_f32();
    case Isa::Avx2: return isa_avx2::table_f32();
    default: return isa_default::table_f32();
  }
}
const BiasActTable<double>& bias_act_table_f64() {
  switch (isa()) {
    case Isa::Avx512: return isa_avx512::table_f64();
    case Isa::Avx2: return isa_avx2::table_f64();
    default: return isa_default::table_f64();
  }
}
}  // namespace cpu
}  // namespace lightdl

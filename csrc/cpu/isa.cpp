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

// Sixteen floats as one GCC vector, for CPU loops written lane-parallel by hand where GCC's
// auto-vectoriser does worse: the LSTM forward gate step (csrc/cpu/rnn_rows_kernels.h) ran
// 1.2-1.35x faster written this way than as the same scalar math left to the vectoriser
// (kernel harness, AVX-512, per step: batch 32 x hidden 128 20.4 -> 15.4 us, 64 x 32
// 12.0 -> 8.9 us, 128 x 256 166 -> 139 us). The backward step (no exp, fewer constants)
// gained nothing this way and stays scalar.
// Makes fm::exp_lanes / fm::tanh_parts (csrc/fastmath.h) work on it. Compiled per ISA: one
// vector is one AVX-512 register (two AVX2 ones).
#pragma once

#include <cstdint>
#include <cstring>

#include "../fastmath.h"

#pragma GCC diagnostic ignored "-Wpsabi"  // internal linkage only: no ABI is involved

namespace lightdl {
namespace {

typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));

inline f32x16 load16(const float* p) {  // unaligned
  f32x16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store16(float* p, f32x16 v) { std::memcpy(p, &v, sizeof v); }

namespace fm {
template <>
struct Lanes<f32x16> {
  using Int = i32x16;
  static Int to_int(f32x16 x) { return __builtin_convertvector(x, i32x16); }  // truncates
  static f32x16 to_float(Int n) { return __builtin_convertvector(n, f32x16); }
  static f32x16 from_bits(Int i) {
    f32x16 f;
    std::memcpy(&f, &i, sizeof f);
    return f;
  }
};
}  // namespace fm

}  // namespace
}  // namespace lightdl

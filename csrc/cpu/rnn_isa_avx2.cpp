// AVX2+FMA build of the CPU LSTM/GRU row loops; only called when the CPU reports both.
#if defined(__x86_64__) && defined(__GNUC__)
#include "isa_prelude.h"  // before the pragma: see the header
#pragma GCC target("avx2,fma,f16c")
#define LIGHTDL_ISA isa_avx2
#define LIGHTDL_RNN_VEC 32  // the LSTM gate math by hand in 8-lane vectors (rnn_rows_kernels.h)
#define LIGHTDL_RNN_STEP_GEMM  // lightdl's step GEMM (step_gemm_kernels.h)
#include "rnn_rows_kernels.h"
#else
#include "rnn_rows.h"
namespace lightdl::cpu::isa_avx2 {
const RnnRows& rnn_rows_f32() { return isa_default::rnn_rows_f32(); }
const RnnRows& rnn_rows_f64() { return isa_default::rnn_rows_f64(); }
}  // namespace lightdl::cpu::isa_avx2
#endif

// AVX-512 build of the CPU LSTM/GRU row loops; only called when the CPU reports
// AVX512F/BW/DQ/VL. 512-bit vectors are asked for explicitly (GCC may prefer 256 otherwise).
#if defined(__x86_64__) && defined(__GNUC__)
#include "isa_prelude.h"  // before the pragma: see the header
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,prefer-vector-width=512")
#define LIGHTDL_ISA isa_avx512
#define LIGHTDL_RNN_VEC 64  // the LSTM gate math by hand in 16-lane vectors (rnn_rows_kernels.h)
#define LIGHTDL_VEC64_AVX512  // exp and tanh of those vectors with AVX-512 instructions (vec64.h)
#define LIGHTDL_RNN_STEP_GEMM  // lightdl's step GEMM (step_gemm_kernels.h)
#define LIGHTDL_RNN_LSTM_STEP  // the fused LSTM step (lstm_step_kernels.h; not in AVX2: see there)
#include "rnn_rows_kernels.h"
#else
#include "rnn_rows.h"
namespace lightdl::cpu::isa_avx512 {
const RnnRows& rnn_rows_f32() { return isa_default::rnn_rows_f32(); }
const RnnRows& rnn_rows_f64() { return isa_default::rnn_rows_f64(); }
}  // namespace lightdl::cpu::isa_avx512
#endif

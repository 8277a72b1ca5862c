// Function tables of the CPU LSTM/GRU step kernels (rows [b0, b1) of one time step), one per
// instruction set and dtype; filled in csrc/cpu/rnn_rows_kernels.h.
#pragma once

#include <cstdint>

#include "../rnn_kernels.h"
#include "lstm_step.h"
#include "step_gemm.h"

namespace lightdl {
namespace cpu {

struct RnnRows {
  void (*lstm_fwd)(const rnn::LstmFwdStep&, int64_t b0, int64_t b1);
  void (*lstm_bwd)(const rnn::LstmBwdStep&, int64_t b0, int64_t b1);
  void (*gru_fwd)(const rnn::GruFwdStep&, int64_t b0, int64_t b1);
  void (*gru_bwd)(const rnn::GruBwdStep&, int64_t b0, int64_t b1);
  // float32 AVX2 / AVX-512 builds; null elsewhere
  void (*step_gemm)(const StepGemmArgs* parts, int count);
  int64_t step_gemm_panel;  // its panel width (columns)
  void (*lstm_step)(const LstmStepArgs&);  // the fused LSTM step (lstm_step.h): AVX-512 only
};

#define LIGHTDL_DECLARE_RNN_ISA(ISA) \
  namespace ISA {                    \
  const RnnRows& rnn_rows_f32();     \
  const RnnRows& rnn_rows_f64();     \
  }
LIGHTDL_DECLARE_RNN_ISA(isa_default)
LIGHTDL_DECLARE_RNN_ISA(isa_avx2)
LIGHTDL_DECLARE_RNN_ISA(isa_avx512)
#undef LIGHTDL_DECLARE_RNN_ISA

}  // namespace cpu
}  // namespace lightdl

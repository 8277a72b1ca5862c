// One LSTM forward time step on CPU in float32 as a single kernel: the step GEMM
// [x_t | h] (W_ih | W_hh)^T (step_gemm.h) with the gate math as its epilogue, applied to each
// tile while it is still in registers. The packed weights interleave the gates (each panel
// holds i, f, g and o of the same L hidden units, one vector each), so a finished tile holds
// whole LSTM cells: the pre-activations are never written to memory and read back by a
// separate pointwise pass. Gains, and why AVX-512 only: lstm_step_kernels.h.
#pragma once

#include <cstdint>

namespace lightdl {
namespace cpu {

struct LstmStepArgs {
  const float* w;        // packed (lstm_step_pack), I + H rows
  const float* x;        // rows of x_t at x + r ldx (I columns; I may be 0)
  int64_t ldx, I;
  const float* h;        // rows of h_{t-1} at h + r H
  float* h_out;          // rows of h_t (not h: every panel of the step reads h)
  const float* bias;     // (4 H) b_ih + b_hh, gate order i, f, g, o
  float* c;              // rows of the cell state, updated in place
  float* y;              // this step's output rows (h_t, or 0 past a sequence's end)
  float* gates;          // the gate activations, (m, 4 H) rows, or null (inference)
  float* cs;             // the cell state after the step, or null (inference)
  const int64_t* len;    // the rows' sequence lengths, or null
  int64_t t, m, H;
};

// Whether lstm_step runs on this host and is wanted: the AVX-512 build of the kernels,
// wherever step_gemm_available(); LIGHTDL_LSTM_FUSED_STEP=0 keeps the step GEMM and the
// pointwise kernel apart instead (read on every call).
bool lstm_step_available();
int64_t lstm_step_packed_size(int64_t k, int64_t H);
// Packs [W_ih | W_hh]^T into `out` (lstm_step_packed_size(I + H, H) floats) straight from
// the layer's weights as torch holds them: w_ih (4 H, I) and w_hh (4 H, H), row-major, gate
// blocks i, f, g, o of H rows each. (Against transposing both, concatenating and packing, the
// op took ~7 us less per call at batch 64 x hidden 64.)
void lstm_step_pack(const float* w_ih, const float* w_hh, int64_t I, int64_t H, float* out);
void lstm_step(const LstmStepArgs& a);

}  // namespace cpu
}  // namespace lightdl

// The per-time-step pointwise kernels of the LSTM/GRU layers, as the device-generic time
// loops (csrc/lstm.cpp, gru.cpp) call them: directly, on raw pointers, not through the
// dispatcher, because at hidden size 32 a dispatcher call and a few tensor allocations per step
// would cost more than the step's arithmetic. One implementation per device: csrc/cpu/rnn.cpp, csrc/cuda/rnn.cu.
//
// All buffers are contiguous, of the compute type (float or double: `dbl`), row-major with
// B rows. `len` (nullable; on the kernel's device) holds the sequence lengths: rows with
// t >= len[b] are past their end, keep their state, emit zeros and get zero gradients.
#pragma once

#include <cstdint>

namespace lightdl {
namespace rnn {

struct LstmFwdStep {
  void* gates;          // (B, 4H) in: pre-activations less the bias; out: activations
  const void* bias;     // (4H,) b_ih + b_hh, added here (a broadcast copy costs a memory pass)
  void* c;              // (B, H) the cell state, updated in place
  void* h;              // (B, H) the hidden state, updated in place
  void* y;              // (B, H) this step's output (h', or 0 past the end)
  void* cs;             // (B, H) this step's cell state, kept for the backward
  const int64_t* len;
  int64_t t, B, H;
};

struct LstmBwdStep {
  const void* gates;    // (B, 4H) the forward's activations
  const void* c;        // (B, H) the cell state after the step
  const void* c_prev;   // (B, H) the cell state before the step
  const void* gy;       // (B, H) dL/dy of this step, or null
  void* dh;             // (B, H) in: dL/dh' carried; out: the part of dL/dh_prev not via W_hh
  void* dc;             // (B, H) in: dL/dc'; out: dL/dc_prev
  void* dgates;         // (B, 4H) out: dL/d(pre-activations)
  const int64_t* len;
  int64_t t, B, H;
  int64_t ldg = 0;      // CPU: the row stride of dgates, if not 4H (0)
};

struct GruFwdStep {
  const void* xg;       // (B, 3H) x W_ih^T
  const void* hg;       // (B, 3H) h W_hh^T
  const void* b_ih;     // (3H,)
  const void* b_hh;     // (3H,)
  void* h;              // (B, H) the hidden state, updated in place
  void* y;              // (B, H) this step's output
  void* saved;          // (B, 4H) out: r, z, n, hn (h W_hn^T + b_hn) for the backward
  const int64_t* len;
  int64_t t, B, H;
};

struct GruBwdStep {
  const void* saved;    // (B, 4H) r, z, n, hn
  const void* h_prev;   // (B, H)
  const void* gy;       // (B, H) or null
  void* dh;             // (B, H) in: dL/dh' carried; out: the part of dL/dh_prev not via W_hh
  void* dx;             // (B, 3H) out: dL/d(x W_ih^T + b_ih)
  void* dhg;            // (B, 3H) out: dL/d(h W_hh^T + b_hh)
  const int64_t* len;
  int64_t t, B, H;
};


// The whole time loop of one layer in one launch (CUDA, csrc/cuda/rnn_loop.cu): each block
// keeps a tile of batch rows' state on chip through all T steps and computes the recurrent
// product itself, so a step costs no host work (the step path above runs a cuBLAS GEMM and a
// kernel per step, 20-36 us of host time each on an H100 against cuDNN's 3-4 us per step).
// Cell: LSTM (4 gates) or GRU (3). All buffers contiguous, of the compute type.
struct LoopFwd {
  void* gates;          // (T, B, G H) in: x W_ih^T (no bias). LSTM: out: the activations (save)
  const void* w_hh_t;   // (H, G H) W_hh^T
  const void* bias;     // LSTM: (4H,) b_ih + b_hh; GRU: (3H,) b_ih
  const void* bias_hh;  // GRU: (3H,) b_hh; LSTM: null
  void* h;              // (B, H) in: h0; out: the last state
  void* c;              // LSTM: (B, H) in: c0; out: the last cell state; GRU: null
  void* y;              // (T, B, H)
  void* saved;          // null (inference) or, LSTM: (T, B, H) cell states; GRU: (T, B, 4H) r, z, n, hn
  const int64_t* len;
  int64_t T, B, H;
};

struct LoopBwd {
  const void* saved;    // LSTM: (T, B, 4H) activations; GRU: (T, B, 4H) r, z, n, hn
  const void* cs;       // LSTM: (T, B, H) cell states; GRU: null
  const void* c0;       // LSTM: (B, H); GRU: null
  const void* y;        // GRU: (T, B, H) outputs (h_prev of step t > 0); LSTM: null
  const void* h0;       // GRU: (B, H); LSTM: null
  const void* gy;       // (T, B, H) dL/dy, or null
  const void* w_hh;     // (G H, H) W_hh
  void* dh;             // (B, H) in: dL/dh_T; out: dL/dh0
  void* dc;             // LSTM: (B, H) in: dL/dc_T; out: dL/dc0; GRU: null
  void* dg;             // (T, B, G H) out: LSTM dL/d(gate pre-activations); GRU dL/d(x W_ih^T + b_ih)
  void* dg_hh;          // GRU: (T, B, 3H) out: dL/d(h W_hh^T + b_hh); LSTM: null
  const int64_t* len;
  int64_t T, B, H;
};
}  // namespace rnn

namespace cpu {
void lstm_fwd_step(bool dbl, const rnn::LstmFwdStep& a);
void lstm_bwd_step(bool dbl, const rnn::LstmBwdStep& a);
void gru_fwd_step(bool dbl, const rnn::GruFwdStep& a);
void gru_bwd_step(bool dbl, const rnn::GruBwdStep& a);
}  // namespace cpu

#ifdef LIGHTDL_WITH_CUDA
namespace cuda {
// Launched on the current stream of the current device.
void lstm_fwd_step(bool dbl, const rnn::LstmFwdStep& a);
void lstm_bwd_step(bool dbl, const rnn::LstmBwdStep& a);
void gru_fwd_step(bool dbl, const rnn::GruFwdStep& a);
void gru_bwd_step(bool dbl, const rnn::GruBwdStep& a);
// Whether the one-launch loop applies (hidden size, shared memory per block); `gates`: 4 or 3.
bool loop_fits(int64_t H, int gates, bool dbl);
void lstm_fwd_loop(bool dbl, const rnn::LoopFwd& a);
void lstm_bwd_loop(bool dbl, const rnn::LoopBwd& a);
void gru_fwd_loop(bool dbl, const rnn::LoopFwd& a);
void gru_bwd_loop(bool dbl, const rnn::LoopBwd& a);
}  // namespace cuda
#endif

}  // namespace lightdl

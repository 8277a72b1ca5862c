// One-launch CUDA time loops of the LSTM / GRU layers (rnn::LoopFwd / rnn::LoopBwd in
// csrc/rnn_kernels.h); the cell math is csrc/rnn_math.h, shared with the step kernels.
//
// Why: the step path (csrc/lstm.cpp, gru.cpp with csrc/cuda/rnn.cu) issues a cuBLAS GEMM and a
// pointwise kernel per time step from the host; on an H100 that measured 20-36 us per step forward
// against cuDNN's 3-4 us (benchmarks/results/cuda/rnn.md), all of it host time. Batch rows
// are independent through the whole sequence, so here each block owns a tile of R rows for
// all T steps: the rows' hidden state lives in shared memory, the LSTM cell state and the
// carried gradients in registers, and each thread (one per hidden unit j) computes its own
// units' recurrent dot products, reading W_hh from L1/L2 (threads j read consecutive words:
// coalesced). No block waits for another, so there is no grid-wide barrier.
//
// Forward step t, thread j, rows r of the tile:  acc[g][r] = sum_k h[r][k] W_hh^T[k][g H + j]
// (h from shared memory, a broadcast read), then the cell math on acc + x W_ih^T + bias; the
// new h goes to the other half of a double buffer (one barrier per step).
// Backward step t (reverse): the cell's backward math per (r, j) gives the gate gradients,
// which go to global memory (for the weight-gradient GEMMs afterwards) and to shared memory;
// after a barrier each thread adds sum_q dgates[r][q] W_hh[q][j] to its carried dh.
//
// Rows past their sequence end keep their state, emit 0 and get zero gate gradients, exactly
// as the step kernels.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/rnn_loop_kernels.cuh"
#include "rnn_kernels.h"

namespace lightdl {
namespace cuda {
namespace {

constexpr int64_t kMaxHidden = 1024;       // one thread per hidden unit
constexpr int64_t kSmemBytes = 48 * 1024;  // the default limit, no opt-in attribute needed
// Up to this size W_hh stays in the SM's L1 across steps, and blocks of fewer rows (more
// blocks) cost no extra L2 traffic; above it every block streams W_hh from L2 each step, and
// 8 rows per block amortise that. (A first guess: to be tuned on the GPU.)
constexpr int64_t kL1WeightBytes = 64 * 1024;

int sm_count() {
  int n = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount,
                                        c10::cuda::current_device()));
  return n > 0 ? n : 1;
}

// Rows per block: where W_hh fits in L1, as few as keep every SM busy (a step's latency grows
// with R); otherwise 8, so that a block's pass over W_hh in L2 serves 8 rows. Capped by the
// shared memory of the backward's gate-gradient tile (the forward's is smaller).
int rows_per_block(int64_t B, int64_t H, int ng, int64_t es) {
  int R = 8;
  if (ng * H * H * es <= kL1WeightBytes) {
    const int64_t sms = sm_count();
    const int64_t per = (B + sms - 1) / sms;
    R = per <= 1 ? 1 : per <= 2 ? 2 : per <= 4 ? 4 : 8;
  }
  while (R > 1 && R * ng * H * es > kSmemBytes) R /= 2;
  return R;
}

// Launches the R-row kernel unless its registers cannot cover one thread per hidden unit
// (at R = 8 the backward takes ~160 registers, so at most ~400 threads); false then.
template <Cell C, typename T, int R>
bool launch_r(bool fwd, const void* args, int64_t B, int64_t H) {
  const int64_t es = sizeof(T);
  const unsigned threads = static_cast<unsigned>((H + 31) / 32 * 32);
  cudaFuncAttributes attr;
  if (fwd) C10_CUDA_CHECK(cudaFuncGetAttributes(&attr, fwd_loop<C, T, R>));
  else C10_CUDA_CHECK(cudaFuncGetAttributes(&attr, bwd_loop<C, T, R>));
  if (static_cast<int64_t>(threads) > attr.maxThreadsPerBlock) return false;
  const unsigned blocks = static_cast<unsigned>((B + R - 1) / R);
  const size_t smem = static_cast<size_t>(fwd ? 2 * R * H * es : R * kGates<C> * H * es);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (fwd)
    fwd_loop<C, T, R><<<blocks, threads, smem, stream>>>(*static_cast<const rnn::LoopFwd*>(args));
  else
    bwd_loop<C, T, R><<<blocks, threads, smem, stream>>>(*static_cast<const rnn::LoopBwd*>(args));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return true;
}

template <Cell C, typename T>
void launch(bool fwd, const void* args, int64_t T_, int64_t B, int64_t H) {
  if (T_ == 0 || B == 0) return;  // the state passes through (the caller's fresh copies)
  const int R = rows_per_block(B, H, kGates<C>, sizeof(T));
  if (R >= 8 && launch_r<C, T, 8>(fwd, args, B, H)) return;
  if (R >= 4 && launch_r<C, T, 4>(fwd, args, B, H)) return;
  if (R >= 2 && launch_r<C, T, 2>(fwd, args, B, H)) return;
  const bool launched = launch_r<C, T, 1>(fwd, args, B, H);
  TORCH_CHECK(launched, "lightdl: RNN loop kernel: hidden size ", H,
              " needs more threads than the kernel's registers allow");
}

template <Cell C>
void dispatch(bool dbl, bool fwd, const void* args, int64_t T_, int64_t B, int64_t H) {
  if (dbl) launch<C, double>(fwd, args, T_, B, H);
  else launch<C, float>(fwd, args, T_, B, H);
}

}  // namespace

bool loop_fits(int64_t H, int gates, bool dbl) {
  const int64_t es = dbl ? 8 : 4;
  return H >= 1 && H <= kMaxHidden && gates * H * es <= kSmemBytes;
}

void lstm_fwd_loop(bool dbl, const rnn::LoopFwd& a) {
  dispatch<Cell::LSTM>(dbl, true, &a, a.T, a.B, a.H);
}
void lstm_bwd_loop(bool dbl, const rnn::LoopBwd& a) {
  dispatch<Cell::LSTM>(dbl, false, &a, a.T, a.B, a.H);
}
void gru_fwd_loop(bool dbl, const rnn::LoopFwd& a) {
  dispatch<Cell::GRU>(dbl, true, &a, a.T, a.B, a.H);
}
void gru_bwd_loop(bool dbl, const rnn::LoopBwd& a) {
  dispatch<Cell::GRU>(dbl, false, &a, a.T, a.B, a.H);
}

}  // namespace cuda
}  // namespace lightdl

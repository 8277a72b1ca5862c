// What the LSTM and GRU layer ops (csrc/lstm.cpp, csrc/gru.cpp) share: one device-generic
// time loop for CPU and CUDA, built from the pieces here and in rnn_gemm.h.
//
// Forward: the input projection x W_ih^T is computed for many steps at once (one GEMM per
// chunk of steps, see chunk_steps: issued just before the chunk runs, it is still in cache when
// the steps read it); each step is one recurrent GEMM (into the preallocated gate buffer, so no
// allocation per step) and one pointwise kernel (csrc/rnn_kernels.h) called directly on raw
// pointers. The LSTM on CPU folds the projection into the step's GEMM instead, [x_t | h]
// (W_ih | W_hh)^T (see fold_input in lstm.cpp). The forward returns, besides (y, h_T, c_T),
// what the backward needs: the gate activations of every step and (LSTM) the cell states; with
// save=False (inference) it keeps neither and the gates live in a ring buffer of one chunk.
// Backward: the reverse loop runs one pointwise kernel and one GEMM (dh += dG_t W_hh) per
// step; the weight gradients are large GEMMs over the gate gradients dG of all steps
// ([dW_ih | dW_hh | db]^T = [X | H_prev | 1]^T dG, dx = dG W_ih), issued per chunk of steps
// while that chunk of dG is still in cache (see chunk_steps, LeftOperand), per block of batch
// rows on CPU (see over_row_blocks).
//
// float16/bfloat16 inputs are computed in float32 (GEMMs, gates and states), and the returned
// intermediates stay float32; y, h_T, c_T and the gradients are rounded to the input dtype.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <tuple>
#include <type_traits>

#include "checks.h"
#include "cpu/blocks.h"
#include "rnn_kernels.h"

namespace lightdl::rnn_layer {


using OptTensor = std::optional<at::Tensor>;

inline bool defined(const OptTensor& t) { return t.has_value() && t->defined(); }

struct Dims {
  int64_t T, B, I, H;
};

inline void check_param(const at::Tensor& p, const at::Tensor& x, const char* op, const char* name,
                        at::IntArrayRef shape) {
  TORCH_CHECK_VALUE(p.sizes() == shape, op, ": `", name, "` must have shape ", shape, ", got ",
                    p.sizes());
  TORCH_CHECK_TYPE(p.scalar_type() == x.scalar_type(), op, ": `", name, "` dtype ",
                   p.scalar_type(), " differs from `x` dtype ", x.scalar_type());
  TORCH_CHECK_VALUE(p.device() == x.device(), op, ": `", name, "` is on ", p.device(),
                    " but `x` is on ", x.device());
}

// The argument contract of lstm/gru (G gates: 4 or 3); the Python wrappers check the same with
// the same messages first.
inline Dims check_layer(const char* op, int64_t G, const at::Tensor& x, const at::Tensor& h0,
                        const at::Tensor* c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                        const OptTensor& b_ih, const OptTensor& b_hh, const OptTensor& lengths) {
  check_float_tensor(x, op, "x");
  TORCH_CHECK_VALUE(x.dim() == 3, op, ": `x` must have shape (seq_len, batch, input_size), got ",
                    x.sizes());
  TORCH_CHECK_VALUE(w_hh.dim() == 2 && w_hh.size(0) % G == 0 && w_hh.size(0) == G * w_hh.size(1),
                    op, ": `w_hh` must have shape (", G, "*hidden_size, hidden_size), got ",
                    w_hh.sizes());
  const Dims d{x.size(0), x.size(1), x.size(2), w_hh.size(1)};
  check_param(w_hh, x, op, "w_hh", {G * d.H, d.H});
  check_param(w_ih, x, op, "w_ih", {G * d.H, d.I});
  check_param(h0, x, op, "h0", {d.B, d.H});
  if (c0 != nullptr) check_param(*c0, x, op, "c0", {d.B, d.H});
  if (defined(b_ih)) check_param(*b_ih, x, op, "b_ih", {G * d.H});
  if (defined(b_hh)) check_param(*b_hh, x, op, "b_hh", {G * d.H});
  if (defined(lengths)) {
    const at::Tensor& l = *lengths;
    TORCH_CHECK_VALUE(l.scalar_type() == at::kLong && l.device().is_cpu() && l.dim() == 1 &&
                          l.size(0) == d.B,
                      op, ": `lengths` must be a CPU int64 tensor of shape (", d.B,
                      ",), got ", l.scalar_type(), " on ", l.device(), " of shape ", l.sizes());
    if (d.B > 0) {
      const auto mm = at::aminmax(l);
      const int64_t lo = std::get<0>(mm).item<int64_t>(), hi = std::get<1>(mm).item<int64_t>();
      TORCH_CHECK_VALUE(lo >= 0 && hi <= d.T, op, ": `lengths` must lie in [0, seq_len=", d.T,
                        "], got values in [", lo, ", ", hi, "]");
    }
  }
  return d;
}

inline at::ScalarType compute_type(const at::Tensor& x) {
  const auto st = x.scalar_type();
  return st == at::kHalf || st == at::kBFloat16 ? at::kFloat : st;
}

// Contiguous, in the compute type; a copy only when needed.
inline at::Tensor as_compute(const at::Tensor& t, at::ScalarType ct) {
  return (t.scalar_type() == ct ? t : t.to(ct)).contiguous();
}

// A fresh, writable copy in the compute type (the time loop updates it in place).
inline at::Tensor fresh(const at::Tensor& t, at::ScalarType ct) {
  return t.scalar_type() == ct ? t.clone(at::MemoryFormat::Contiguous) : t.to(ct).contiguous();
}

// W^T as a contiguous matrix: the per-step GEMM h W^T runs up to 1.6x faster with a plain
// row-major right operand than with a transposed view (MKL, batch 32-64, hidden 32-128).
inline at::Tensor transposed(const at::Tensor& w, at::ScalarType ct) {
  return (w.scalar_type() == ct ? w : w.to(ct)).t().contiguous();
}

inline at::Tensor as_dtype(const at::Tensor& t, at::ScalarType st) {
  return t.scalar_type() == st ? t : t.to(st);
}

// The backward's saved intermediates must come from the forward op.
inline void check_saved(const at::Tensor& t, const char* op, const char* name, at::ScalarType ct,
                        at::IntArrayRef shape) {
  TORCH_CHECK_VALUE(t.sizes() == shape && t.scalar_type() == ct && t.is_contiguous(), op, ": `",
                    name, "` must be the contiguous ", ct, " tensor of shape ", shape,
                    " that the forward op returned, got ", t.scalar_type(), " of shape ",
                    t.sizes());
}

// The sequence lengths on the kernels' device (nullptr: every sequence is full length).
struct Lengths {
  at::Tensor dev;
  const int64_t* ptr = nullptr;
  Lengths(const OptTensor& l, const at::Device& device) {
    if (!defined(l)) return;
    dev = l->to(device, at::kLong).contiguous();
    ptr = dev.const_data_ptr<int64_t>();
  }
};

struct StepKernels {
  void (*lstm_fwd)(bool, const rnn::LstmFwdStep&);
  void (*lstm_bwd)(bool, const rnn::LstmBwdStep&);
  void (*gru_fwd)(bool, const rnn::GruFwdStep&);
  void (*gru_bwd)(bool, const rnn::GruBwdStep&);
};

inline StepKernels kernels_for(const at::Tensor& x) {
  if (x.is_cuda()) {
#ifdef LIGHTDL_WITH_CUDA
    return {cuda::lstm_fwd_step, cuda::lstm_bwd_step, cuda::gru_fwd_step, cuda::gru_bwd_step};
#else
    TORCH_CHECK(false, "lightdl: built without CUDA kernels");
#endif
  }
  return {cpu::lstm_fwd_step, cpu::lstm_bwd_step, cpu::gru_fwd_step, cpu::gru_bwd_step};
}

// LIGHTDL_RNN_CUDA_LOOP=persistent runs the CUDA layers' whole time loop in one launch
// (csrc/cuda/rnn_loop.cu) where it fits (hidden size <= 1024); read on every call. It is not
// the default yet: it was written in a session without a GPU and has not been timed against
// the step path and cuDNN, which decides the rule.
#ifdef LIGHTDL_WITH_CUDA
inline bool use_loop(const at::Tensor& x, int64_t H, int gates, bool dbl) {
  if (!x.is_cuda()) return false;
  const char* env = std::getenv("LIGHTDL_RNN_CUDA_LOOP");
  return env != nullptr && std::strcmp(env, "persistent") == 0 && cuda::loop_fits(H, gates, dbl);
}
#endif

// Batch entries are independent through the whole sequence, so on CPU the steps run on P
// blocks of rows in parallel, each block with its own small per-step GEMMs (MKL runs
// single-threaded inside a parallel region) and kernel calls. Spreading each step's GEMM and
// kernel over the threads instead leaves too little work per thread and step: at batch 64 x
// hidden 32 that ran slower on 2 threads than on 1. The LSTM forward (input projection folded
// into the step, see fold_input) and both backward ops run each block through the whole
// sequence: in the backward each block accumulates its own [dW | db]^T from its own rows'
// chunks (single-threaded GEMMs, summed at the end), so the threads never wait for each other.
// Against a join per chunk for multi-threaded weight GEMMs, the backward op took 6-22% less
// time for the LSTM, 2-38% for the GRU, on the benchmark shapes at 2 threads (interleaved in
// one process). The GRU forward still joins once per chunk, after its input projection.
// One block (one thread, or a small batch, or CUDA) runs the rows [0, B) as one.
inline constexpr int64_t kMinRowsPerBlock = 8;

// How many blocks of rows the loops split a batch of B rows into.
inline int64_t row_block_count(const at::Tensor& x, int64_t B) {
  return x.is_cuda() ? 1
                     : std::max<int64_t>(
                           1, std::min<int64_t>(at::get_num_threads(), B / kMinRowsPerBlock));
}

template <typename F>
inline void over_row_blocks(const at::Tensor& x, int64_t B, const F& f) {
  cpu::for_blocks(row_block_count(x, B), B, [&](int64_t, int64_t r0, int64_t r1) { f(r0, r1); });
}

// Pointer to row r of a (rows, cols) block at `base` (cols elements of `es` bytes per row).
template <typename P>
P* row_ptr(P* base, int64_t r, int64_t cols, int64_t es) {
  if (base == nullptr) return nullptr;
  using C = std::conditional_t<std::is_const_v<P>, const char, char>;
  return reinterpret_cast<P*>(reinterpret_cast<C*>(base) + r * cols * es);
}

inline const int64_t* len_rows(const int64_t* len, int64_t r0) { return len ? len + r0 : nullptr; }

// Rows [r0, ...) of step t of a (T, B, cols) contiguous buffer (null stays null).
template <typename P>
P* rows_at(P* base, int64_t t, int64_t r0, int64_t B, int64_t cols, int64_t es) {
  return row_ptr(base, t * B + r0, cols, es);
}

// The weight gradients are accumulated chunk by chunk of K steps, right after the reverse
// loop has produced the chunk's gate gradients and while they are still in cache: each chunk
// is a few large GEMMs (K*B rows), and dG never makes a round trip through memory. Measured on
// the benchmark shapes: 25-40% less time than single GEMMs over all T steps once dG outgrows
// the L2 cache; it also bounds the backward's workspace to one chunk. (Tuned on the benchmark
// shapes: 256 kB / 512 rows beat per-step, 1 MB and 4 MB chunks by 5-20%.)
inline constexpr int64_t kChunkBytes = 1 << 18;
// ... but at least this many rows per chunk, or the GEMMs get too thin to run at full speed.
inline constexpr int64_t kMinChunkRows = 512;

inline int64_t chunk_steps(int64_t rows, int64_t T, int64_t G, int64_t es) {
  const int64_t step_bytes = std::max<int64_t>(1, rows * G * es);
  const int64_t min_steps = (kMinChunkRows + rows - 1) / std::max<int64_t>(rows, 1);
  return std::clamp<int64_t>(std::max(kChunkBytes / step_bytes, min_steps), 1,
                             std::max<int64_t>(T, 1));
}

// With 1 < I < 16 input columns, MKL runs dG W_ih (N = I) through a slow path on CPU: 9-25
// GFLOP/s against 55-75 at I = 16 (AMD EPYC, one thread, 512 rows of dG, G = 128-1024 gate
// columns). The transposed product (W_ih^T dG^T, I rows by 512 columns) plus a copy took
// 1.2-6x less time there (I = 12: 1.2-1.4x, I = 2: 3.3-6x); at I = 1 (a GEMV) and I >= 16 the
// direct product is faster. The LSTM backward op at (64, 200, 8, 64) spent 6.4-7.0 ms on dx
// before, 1.8-2.0 ms after (1 thread, dx cost = with minus without x_grad, interleaved).
inline bool input_grad_transposed(const at::Tensor& dx3) {
  const int64_t I = dx3.size(2);
  return dx3.is_cpu() && I > 1 && I < 16;
}

// dx rows for steps [c0, c0 + k) and batch rows [r0, r0 + n) = dG W_ih, dG the block's
// ((k n), G) gate gradients; dx3 is (T, B, I).
inline void input_grad(at::Tensor& dx3, const at::Tensor& dG, const at::Tensor& Wih, int64_t c0,
                       int64_t k, int64_t r0, int64_t n) {
  at::Tensor out = dx3.narrow(0, c0, k);
  if (input_grad_transposed(dx3)) {
    const at::Tensor t = at::mm(Wih.t(), dG.t()).t();  // (k n, I), a transposed view
    out.narrow(1, r0, n).copy_(t.view({k, n, dx3.size(2)}));
    return;
  }
  if (n == dx3.size(1)) {
    at::Tensor o = out.view({k * n, dx3.size(2)});
    at::mm_out(o, dG, Wih);
  } else {
    out.narrow(1, r0, n).copy_(at::mm(dG, Wih).view({k, n, dx3.size(2)}));
  }
}

// Rows [r0, r0 + k) of a (cols, G) accumulator of L^T dG, as the (G, k) gradient: always a
// copy, so that no two returned gradients share memory (autograd may accumulate into one).
inline at::Tensor grad_rows(const at::Tensor& acc, int64_t r0, int64_t k) {
  return acc.narrow(0, r0, k).t().clone(at::MemoryFormat::Contiguous);
}

// out rows [out_r0, out_r0 + n) = X rows [r0, r0 + n) W_ih^T. (The step kernels add the biases: as
// the addmm's `self`, a bias is first broadcast-copied into the whole output, a memory pass.)
inline void input_projection(at::Tensor& out, int64_t out_r0, const at::Tensor& X,
                             const at::Tensor& WihT, int64_t r0, int64_t n) {
  at::Tensor o = out.narrow(0, out_r0, n);
  at::mm_out(o, X.narrow(0, r0, n), WihT);
}

// One step of few rows on CPU (a cell, called once per step): packing the weights (W^T copies,
// the fused step's or the step GEMM's pack) can cost more than the products it serves; such
// calls run every product through at::mm on W^T as a view (MKL), with the pointwise kernels.
// Measured on AMD EPYC Zen 5, one step, packed / in-place op time, 1 thread: GRU 1.12-6.1x at
// batch 1-32 and hidden 32-256 (its packed path also copies W^T), but 0.96x at 4 steps of 8
// rows and 0.70x at 8 of 4. LSTM (the fused step packs straight from the weights):
// 1.07-4.0x at batch 1-4 from hidden 64 on ((I + H) x 4H weights of 18k floats and more) and
// 1.31-1.47x at batch 8 from hidden 128 (74k and more), but 0.71-0.86x at hidden 32 and at
// batch 8-32 of hidden 64.
inline bool few_row_steps(const at::Tensor& x, const Dims& d, int gates) {
  if (!x.is_cpu() || d.T != 1) return false;
  if (gates == 3) return d.B <= 32;
  const int64_t weights = (d.I + d.H) * gates * d.H;
  return weights >= (1 << 14) && d.B <= (weights >= (1 << 16) ? 8 : 4);
}

// The backward of one step of few rows (few_row_steps): dh += dR W_hh, and dx = dX W_ih (dx
// (1, B, I)) where asked for; dR, dX (B, G) are the gradients of the recurrent and the input
// pre-activations (the same for the LSTM).
inline void few_step_input_grads(at::Tensor& dh, at::Tensor& dx, const at::Tensor& dR,
                                 const at::Tensor& dX, const at::Tensor& Whh, const at::Tensor& Wih,
                                 bool x_grad) {
  dh.addmm_(dR, Whh);
  if (x_grad) {
    at::Tensor dx2 = dx.view({dX.size(0), Wih.size(1)});
    at::mm_out(dx2, dX, Wih);
  }
}

// W^T: a view for few_row_steps, else a contiguous copy (see transposed).
inline at::Tensor right_operand(const at::Tensor& w, at::ScalarType ct, bool few) {
  return few ? as_compute(w, ct).t() : transposed(w, ct);
}

// An optional bias in the compute type; zeros when absent (the kernels always add one).
inline at::Tensor bias_or_zeros(const OptTensor& b, int64_t n, const at::Tensor& like) {
  return defined(b) ? as_compute(*b, like.scalar_type()) : at::zeros({n}, like.options());
}

// b_ih + b_hh in the compute type (zeros for an absent one). On CPU in our own loop: for a cell
// (one step at batch 1) the dispatch of at::zeros and an ATen add cost about as much as the
// step's kernel.
inline at::Tensor summed_bias(const OptTensor& b_ih, const OptTensor& b_hh, int64_t n,
                              const at::Tensor& like) {
  const auto ct = like.scalar_type();
  if (!like.is_cpu() || (ct != at::kFloat && ct != at::kDouble))
    return bias_or_zeros(b_ih, n, like) + bias_or_zeros(b_hh, n, like);
  at::Tensor out = at::empty({n}, like.options());
  const at::Tensor a = defined(b_ih) ? as_compute(*b_ih, ct) : at::Tensor(),
                   b = defined(b_hh) ? as_compute(*b_hh, ct) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(ct, "summed_bias", [&] {
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    const scalar_t *pa = a.defined() ? a.const_data_ptr<scalar_t>() : nullptr,
                   *pb = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
    for (int64_t i = 0; i < n; ++i)
      o[i] = (pa ? pa[i] : scalar_t(0)) + (pb ? pb[i] : scalar_t(0));
  });
  return out;
}

}  // namespace lightdl::rnn_layer

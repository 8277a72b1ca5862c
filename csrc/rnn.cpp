// The LSTM and GRU layers (lightdl::lstm, lightdl::gru and their backward ops): one
// device-generic time loop for CPU and CUDA.
//
// Forward: the input projection x W_ih^T is computed for many steps at once (one GEMM per
// chunk of steps, see chunk_steps: issued just before the chunk runs, it is still in cache when
// the steps read it); each step is one recurrent GEMM (into the preallocated gate buffer, so no
// allocation per step) and one pointwise kernel (csrc/rnn_kernels.h) called directly on raw
// pointers. The LSTM on CPU folds the projection into the step's GEMM instead, [x_t | h]
// (W_ih | W_hh)^T (see fold_input). The forward returns, besides (y, h_T, c_T), what the backward
// needs: the gate activations of every step and (LSTM) the cell states; with save=False
// (inference) it keeps neither and the gates live in a ring buffer of one chunk.
// Backward: the reverse loop runs one pointwise kernel and one GEMM (dh += dG_t W_hh) per
// step; the weight gradients are large GEMMs over the gate gradients dG of all steps
// ([dW_ih | dW_hh | db]^T = [X | H_prev | 1]^T dG, dx = dG W_ih), issued per chunk of steps
// while that chunk of dG is still in cache (see chunk_steps, LeftOperand), per block of batch
// rows on CPU (see over_row_blocks).
//
// float16/bfloat16 inputs are computed in float32 (GEMMs, gates and states), and the returned
// intermediates stay float32; y, h_T, c_T and the gradients are rounded to the input dtype.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <tuple>
#include <vector>

#include "checks.h"
#include "cpu/blocks.h"
#include "cpu/packed_gemm.h"
#include "cpu/lstm_step.h"
#include "cpu/step_gemm.h"
#include "rnn_kernels.h"

namespace lightdl {
namespace {

using OptTensor = std::optional<at::Tensor>;

bool defined(const OptTensor& t) { return t.has_value() && t->defined(); }

struct Dims {
  int64_t T, B, I, H;
};

void check_param(const at::Tensor& p, const at::Tensor& x, const char* op, const char* name,
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
Dims check_layer(const char* op, int64_t G, const at::Tensor& x, const at::Tensor& h0,
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

at::ScalarType compute_type(const at::Tensor& x) {
  const auto st = x.scalar_type();
  return st == at::kHalf || st == at::kBFloat16 ? at::kFloat : st;
}

// Contiguous, in the compute type; a copy only when needed.
at::Tensor as_compute(const at::Tensor& t, at::ScalarType ct) {
  return (t.scalar_type() == ct ? t : t.to(ct)).contiguous();
}

// A fresh, writable copy in the compute type (the time loop updates it in place).
at::Tensor fresh(const at::Tensor& t, at::ScalarType ct) {
  return t.scalar_type() == ct ? t.clone(at::MemoryFormat::Contiguous) : t.to(ct).contiguous();
}

// W^T as a contiguous matrix: the per-step GEMM h W^T runs up to 1.6x faster with a plain
// row-major right operand than with a transposed view (MKL, batch 32-64, hidden 32-128).
at::Tensor transposed(const at::Tensor& w, at::ScalarType ct) {
  return (w.scalar_type() == ct ? w : w.to(ct)).t().contiguous();
}

at::Tensor as_dtype(const at::Tensor& t, at::ScalarType st) {
  return t.scalar_type() == st ? t : t.to(st);
}

// The backward's saved intermediates must come from the forward op.
void check_saved(const at::Tensor& t, const char* op, const char* name, at::ScalarType ct,
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

StepKernels kernels_for(const at::Tensor& x) {
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
bool use_loop(const at::Tensor& x, int64_t H, int gates, bool dbl) {
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
constexpr int64_t kMinRowsPerBlock = 8;

// How many blocks of rows the loops split a batch of B rows into.
int64_t row_block_count(const at::Tensor& x, int64_t B) {
  return x.is_cuda() ? 1
                     : std::max<int64_t>(
                           1, std::min<int64_t>(at::get_num_threads(), B / kMinRowsPerBlock));
}

template <typename F>
void over_row_blocks(const at::Tensor& x, int64_t B, const F& f) {
  cpu::for_blocks(row_block_count(x, B), B, [&](int64_t, int64_t r0, int64_t r1) { f(r0, r1); });
}

// The per-step recurrent product C (+)= A W, W (k x n) the same for every step. On CPU in
// float32: lightdl's step GEMM on AVX2 and AMD AVX-512 hosts (csrc/cpu/step_gemm.h), MKL's
// packed GEMM elsewhere (csrc/cpu/packed_gemm.cpp: 4-30% less time per step than
// at::addmm_out on the benchmark shapes); either way W is packed once per call and no ATen
// call is made per step.
// at::addmm_out otherwise. A and C are blocks of contiguous rows.
class StepGemm {
 public:
  StepGemm(const at::Tensor& W, int64_t max_rows) : W_(W) {
    if (!W.is_cpu() || W.scalar_type() != at::kFloat || !W.is_contiguous()) return;
    if (cpu::step_gemm_available()) {
      own_ = at::empty({cpu::step_gemm_packed_size(W.size(0), W.size(1))}, W.options());
      cpu::step_gemm_pack(W.const_data_ptr<float>(), W.size(1), 1, W.size(0), W.size(1),
                          own_.mutable_data_ptr<float>());
    } else {
      packed_ = cpu::PackedRight::make(W.const_data_ptr<float>(), W.size(0), W.size(1), max_rows);
    }
  }
  // Whether the two-part form below is available (lightdl's step GEMM).
  bool split_left() const { return own_.defined(); }

  // C (rows x n, leading dimension ldc) (+)= A (rows x k, lda) W, on raw pointers into the
  // loop's buffers: no tensor is made per step on the CPU float32 paths.
  void operator()(void* C, int64_t ldc, const void* A, int64_t lda, int64_t rows,
                  bool accumulate) const {
    if (rows == 0) return;
    if (own_.defined()) return (*this)(C, ldc, A, lda, W_.size(0), nullptr, 0, rows, accumulate);
    if (packed_) {
      // C = A W as C = 0 + A W: with beta = 0 MKL clears C in a pass of its own
      // (sgemm_mscale, ~5 us for 32 x 256 floats on an AMD EPYC core), slower than memset.
      // Measured on the forward ops (interleaved in one process, 1 and 2 threads, training and
      // inference): LSTM 0-25% less time at batch 64 x hidden 32-64, GRU 0-7%; no change at
      // hidden 128-256.
      float* c = static_cast<float*>(C);
      const int64_t n = W_.size(1);
      if (!accumulate) {
        if (ldc == n) std::memset(c, 0, rows * n * sizeof(float));
        else for (int64_t r = 0; r < rows; ++r) std::memset(c + r * ldc, 0, n * sizeof(float));
      }
      packed_->gemm(static_cast<const float*>(A), lda, rows, 1.f, c, ldc);
      return;
    }
    const auto opts = W_.options();
    at::Tensor Ct = at::from_blob(C, {rows, W_.size(1)}, {ldc, 1}, opts);
    const at::Tensor At = at::from_blob(const_cast<void*>(A), {rows, W_.size(0)}, {lda, 1}, opts);
    if (accumulate) at::addmm_out(Ct, Ct, At, W_);
    else at::mm_out(Ct, At, W_);
  }

  // The same with A = [A0 | A1]: its first k0 columns in rows at A0, the rest in rows at A1
  // (split_left() only).
  // `next`: see accumulate_then.
  void operator()(void* C, int64_t ldc, const void* A0, int64_t lda0, int64_t k0, const void* A1,
                  int64_t lda1, int64_t rows, bool accumulate,
                  std::initializer_list<cpu::PrefetchRange> next = {}) const {
    TORCH_INTERNAL_ASSERT(own_.defined());
    cpu::StepGemmArgs a{own_.const_data_ptr<float>(), static_cast<const float*>(A0), lda0, k0,
                        static_cast<const float*>(A1), lda1, W_.size(0) - k0,
                        static_cast<float*>(C), ldc, rows, W_.size(1), accumulate};
    std::copy_n(next.begin(), std::min<size_t>(next.size(), std::size(a.pf)), a.pf);
    cpu::step_gemm(a);
  }

  // C += A W as above, bringing `next` (up to three ranges of memory) into L2 meanwhile where
  // lightdl's step GEMM runs. The backward loops pass what the next (earlier) step's pointwise
  // kernel reads: its saved gates, previous state and output gradient, written by the forward
  // long before and by then in L3 or memory. The kernel stalled on those loads: at batch 64 x
  // hidden 64 it took 4.5 us per step over 200 steps against 1.9 us over 8 (its data still in
  // L2); the GEMM's FMAs hide the misses, and 2.2 us is left.
  void accumulate_then(void* C, int64_t ldc, const void* A, int64_t lda, int64_t rows,
                       std::initializer_list<cpu::PrefetchRange> next) const {
    if (!own_.defined() || rows == 0) return (*this)(C, ldc, A, lda, rows, true);
    (*this)(C, ldc, A, lda, W_.size(0), nullptr, 0, rows, true, next);
  }

 private:
  at::Tensor W_;
  at::Tensor own_;  // W packed for lightdl's step GEMM
  std::unique_ptr<cpu::PackedRight> packed_;
};

// The weight gradients of a chunk of steps: acc (cols, G) += L^T dG, L (m, cols) and dG (m, G).
// On CPU in float32 where lightdl's step GEMM runs: that GEMM, with L^T read in place through
// its column stride, and dG either packed per chunk (a copy of dG, which the product reads
// cols times) or, `in_place`, read where it is: the caller then lays dG out in rows of
// row_stride() floats (step_gemm_row_stride), and where its block of rows is the whole batch,
// from_layer() reads L's parts from x, h0 and y instead of a copy (gains: lstm_backward).
// at::addmm_ (MKL) otherwise.
class GradGemm {
 public:
  GradGemm(const at::Tensor& like, int64_t max_rows, int64_t G, bool in_place = false)
      : G_(G) {
    if (!like.is_cpu() || like.scalar_type() != at::kFloat || !cpu::step_gemm_available()) return;
    own_ = true;
    if (in_place) ld_ = cpu::step_gemm_row_stride(G);
    else packed_ = at::empty({cpu::step_gemm_packed_size(max_rows, G)}, like.options());
  }
  // The row stride the caller gives dG.
  int64_t row_stride() const { return ld_ > 0 ? ld_ : G_; }
  // Whether from_layer() can be used.
  bool in_place() const { return ld_ > 0; }

  void operator()(at::Tensor& acc, const at::Tensor& L, const at::Tensor& dG) const {
    if (!own_) {
      if (!acc.is_cpu()) return void(acc.addmm_(L.t(), dG));
      // MKL sums a small product's rows in one run per element, on from acc: in float32 that
      // drifted by up to 1e-5 of the sum's terms over a chunk of 20k rows (hidden 1). Chunks
      // of more than 2 kMklRows rows (only below hidden ~16, see chunk_steps) are summed in
      // equal blocks of at most kMklRows, each apart and then added, as our kernel's slices
      // are. (Not the usual chunks of 512-1023 rows: blocks of 256 there cost the GRU at
      // batch 64 x hidden 32 19% more time, two more ATen calls per chunk.)
      const int64_t m = dG.size(0);
      if (m <= 2 * kMklRows) return void(acc.addmm_(L.t(), dG));
      const int64_t blocks = (m + kMklRows - 1) / kMklRows, rows = (m + blocks - 1) / blocks;
      for (int64_t r = 0; r < m; r += rows) {
        const int64_t n = std::min(rows, m - r);
        acc.add_(at::mm(L.narrow(0, r, n).t(), dG.narrow(0, r, n)));
      }
      return;
    }
    TORCH_INTERNAL_ASSERT(L.is_contiguous() && acc.stride(1) == 1);
    const int64_t cols = L.size(1);
    cpu::StepGemmArgs a = part(acc, 0, cols, L.const_data_ptr<float>(), dG.size(0), nullptr, 0,
                               cols);
    product(&a, 1, dG);
  }

  // acc += L^T dG for L = [x_t | h_{t-1} | 1] over steps [c0, c1) of the whole batch: x_t rows
  // of X3, h_{t-1} rows of H0 (t = 0) and of Y3 (t > 0), all (T or 1, B, .), each step's
  // rows following the last's as in L (in_place() only).
  void from_layer(at::Tensor& acc, const at::Tensor& X3, const at::Tensor& H0,
                  const at::Tensor& Y3, int64_t c0, int64_t c1, const at::Tensor& dG) const {
    TORCH_INTERNAL_ASSERT(in_place() && acc.stride(1) == 1);
    const int64_t B = X3.size(1), I = X3.size(2), H = Y3.size(2), m = (c1 - c0) * B;
    const float* y = Y3.const_data_ptr<float>();
    static const float one = 1.f;  // the bias column: 1 in every row (column stride 0)
    cpu::StepGemmArgs parts[3] = {
        part(acc, 0, I, X3.const_data_ptr<float>() + c0 * B * I, m, nullptr, 0, I),
        c0 == 0 ? part(acc, I, H, H0.const_data_ptr<float>(), B, y, m - B, H)
                : part(acc, I, H, y + (c0 - 1) * B * H, m, nullptr, 0, H),
        part(acc, I + H, 1, &one, m, nullptr, 0, 0)};
    product(parts, 3, dG);
  }

 private:
  // Rows [row0, row0 + rows) of acc += A dG, A (rows, k0 + k1) in two parts as in
  // StepGemmArgs (element (i, k) at a + i + k ka: columns of L, read through L's row stride).
  cpu::StepGemmArgs part(at::Tensor& acc, int64_t row0, int64_t rows, const float* a0,
                         int64_t k0, const float* a1, int64_t k1, int64_t ka) const {
    return {nullptr, a0, 1, k0, a1, 1, k1, acc.mutable_data_ptr<float>() + row0 * acc.stride(0),
            acc.stride(0), rows, G_, true, ka};
  }

  // The parts' products with dG, packed here or read in place.
  void product(cpu::StepGemmArgs* parts, int count, const at::Tensor& dG) const {
    const float* w;
    if (in_place()) {
      TORCH_INTERNAL_ASSERT(dG.stride(0) == ld_ && dG.stride(1) == 1);
      w = dG.const_data_ptr<float>();
    } else {
      TORCH_INTERNAL_ASSERT(dG.is_contiguous());
      float* p = packed_.mutable_data_ptr<float>();
      cpu::step_gemm_pack(dG.const_data_ptr<float>(), G_, 1, dG.size(0), G_, p);
      w = p;
    }
    for (int i = 0; i < count; ++i) parts[i].w = w, parts[i].ldw = in_place() ? ld_ : 0;
    cpu::step_gemm(parts, count);
  }

  static constexpr int64_t kMklRows = 512;
  int64_t G_, ld_ = 0;
  bool own_ = false;
  at::Tensor packed_;  // dG packed for lightdl's step GEMM
};

// A (rows, n) buffer whose rows are `ld` >= n apart, as a (rows, n) view; the columns past n
// are zeroed (the step GEMM reads them into lanes it never stores; zeros keep them finite).
at::Tensor padded_rows(int64_t rows, int64_t n, int64_t ld, const at::TensorOptions& o) {
  if (ld == n) return at::empty({rows, n}, o);
  at::Tensor buf = at::empty({rows, ld}, o);
  buf.narrow(1, n, ld - n).zero_();
  return buf.narrow(1, 0, n);
}

// Pointer to row r of a (rows, cols) block at `base` (cols elements of `es` bytes per row).
template <typename P>
P* row_ptr(P* base, int64_t r, int64_t cols, int64_t es) {
  if (base == nullptr) return nullptr;
  using C = std::conditional_t<std::is_const_v<P>, const char, char>;
  return reinterpret_cast<P*>(reinterpret_cast<C*>(base) + r * cols * es);
}

const int64_t* len_rows(const int64_t* len, int64_t r0) { return len ? len + r0 : nullptr; }

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
constexpr int64_t kChunkBytes = 1 << 18;
// ... but at least this many rows per chunk, or the GEMMs get too thin to run at full speed.
constexpr int64_t kMinChunkRows = 512;

int64_t chunk_steps(int64_t rows, int64_t T, int64_t G, int64_t es) {
  const int64_t step_bytes = std::max<int64_t>(1, rows * G * es);
  const int64_t min_steps = (kMinChunkRows + rows - 1) / std::max<int64_t>(rows, 1);
  return std::clamp<int64_t>(std::max(kChunkBytes / step_bytes, min_steps), 1,
                             std::max<int64_t>(T, 1));
}

// The weight and bias gradients of a chunk of steps come from one GEMM per gradient matrix dG:
// W^T (+)= L^T dG with L = [x_t | h_{t-1} | 1] (whichever parts that dG multiplies), so that the
// weight and bias gradients of both sides come out of one call, and in this orientation
// (L^T dG rather than dG^T L, which MKL runs faster at these shapes). Against the former four
// calls dW_ih += dG^T X, dW_hh += dG^T H, db += dG^T 1 (a memory pass of its own), the LSTM
// backward op took 4-14% less time on the benchmark shapes at 1 and 2 threads (interleaved in
// one process), 2% more at batch 64 x hidden 32 on 1 thread; the GRU's 0-10% less. The copy
// into L is a pass over (I + H) columns of the chunk's rows, which are in cache.
struct LeftOperand {
  at::Tensor buf;   // (rows, cols): [x | h_{t-1} | 1], [x | 1] or [h_{t-1} | 1]
  at::Tensor ones;  // (rows, 1), for the at::cat_out path (CUDA)
  bool with_x, with_h;

  LeftOperand(int64_t rows, int64_t I, int64_t H, bool x, bool h, const at::TensorOptions& o)
      : buf(at::empty({rows, (x ? I : 0) + (h ? H : 0) + 1}, o)),
        ones(o.device().is_cpu() ? at::Tensor() : at::ones({rows, 1}, o)), with_x(x), with_h(h) {}

  // L for steps [c0, c1) and batch rows [r0, r0 + n), as ((c1 - c0) n, cols), step-major: x_t
  // and h_{t-1}, which is h0 for t = 0 and y_{t-1} otherwise (a row past its sequence end has
  // dG = 0, so the zeros y holds there never matter). X3 is x and Y3 is y, both (T, B, .).
  at::Tensor fill(const at::Tensor& X3, const at::Tensor& H0, const at::Tensor& Y3, int64_t c0,
                  int64_t c1, int64_t r0, int64_t n) {
    at::Tensor L = buf.narrow(0, 0, (c1 - c0) * n);
    if (buf.is_cpu()) {
      // Row by row in our own loop: against an at::cat_out per part, 1-10% less time for the
      // LSTM backward op on the benchmark shapes, 6-18% for the GRU's (interleaved, 1 and 2
      // threads): a chunk's ATen calls cost about as much as its copying at hidden 32.
      if (buf.scalar_type() == at::kDouble) fill_rows<double>(X3, H0, Y3, c0, c1, r0, n);
      else fill_rows<float>(X3, H0, Y3, c0, c1, r0, n);
      return L;
    }
    // CUDA runs the batch as one block: the chunk's rows of x and y are contiguous.
    const int64_t B = X3.size(1);
    TORCH_INTERNAL_ASSERT(r0 == 0 && n == B);
    const auto rows = [&](const at::Tensor& t, int64_t s, int64_t m) {
      return t.view({-1, t.size(-1)}).narrow(0, s * B, m * B);
    };
    int64_t s = c0;  // the first step whose h_{t-1} is a row of y
    if (c0 == 0 && c1 > 0) {
      cat_rows(L.narrow(0, 0, B), rows(X3, 0, 1), H0);
      s = 1;
    }
    if (c1 > s) cat_rows(L.narrow(0, (s - c0) * B, (c1 - s) * B), rows(X3, s, c1 - s),
                         rows(Y3, s - 1, c1 - s));
    return L;
  }

 private:
  template <typename T>
  void fill_rows(const at::Tensor& X3, const at::Tensor& H0, const at::Tensor& Y3, int64_t c0,
                 int64_t c1, int64_t r0, int64_t n) {
    const int64_t B = X3.size(1), I = X3.size(2), H = Y3.size(2), cols = buf.size(1);
    const T* x = X3.const_data_ptr<T>();
    const T* y = Y3.const_data_ptr<T>();
    const T* h0 = H0.const_data_ptr<T>();
    T* out = buf.mutable_data_ptr<T>();
    for (int64_t t = c0; t < c1; ++t) {
      const T* hp = t > 0 ? y + ((t - 1) * B + r0) * H : h0 + r0 * H;
      const T* xp = x + (t * B + r0) * I;
      for (int64_t r = 0; r < n; ++r) {
        T* o = out + ((t - c0) * n + r) * cols;
        if (with_x) o = std::copy_n(xp + r * I, I, o);
        if (with_h) o = std::copy_n(hp + r * H, H, o);
        *o = T(1);
      }
    }
  }

  void cat_rows(at::Tensor out, const at::Tensor& x, const at::Tensor& h) {
    std::vector<at::Tensor> parts;
    if (with_x) parts.push_back(x);
    if (with_h) parts.push_back(h);
    parts.push_back(ones.narrow(0, 0, out.size(0)));
    at::cat_out(out, parts, 1);
  }
};

// With 1 < I < 16 input columns, MKL runs dG W_ih (N = I) through a slow path on CPU: 9-25
// GFLOP/s against 55-75 at I = 16 (AMD EPYC, one thread, 512 rows of dG, G = 128-1024 gate
// columns). The transposed product (W_ih^T dG^T, I rows by 512 columns) plus a copy took
// 1.2-6x less time there (I = 12: 1.2-1.4x, I = 2: 3.3-6x); at I = 1 (a GEMV) and I >= 16 the
// direct product is faster. The LSTM backward op at (64, 200, 8, 64) spent 6.4-7.0 ms on dx
// before, 1.8-2.0 ms after (1 thread, dx cost = with minus without x_grad, interleaved).
bool input_grad_transposed(const at::Tensor& dx3) {
  const int64_t I = dx3.size(2);
  return dx3.is_cpu() && I > 1 && I < 16;
}

// dx rows for steps [c0, c0 + k) and batch rows [r0, r0 + n) = dG W_ih, dG the block's
// ((k n), G) gate gradients; dx3 is (T, B, I).
void input_grad(at::Tensor& dx3, const at::Tensor& dG, const at::Tensor& Wih, int64_t c0,
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
at::Tensor grad_rows(const at::Tensor& acc, int64_t r0, int64_t k) {
  return acc.narrow(0, r0, k).t().clone(at::MemoryFormat::Contiguous);
}

// out rows [out_r0, out_r0 + n) = X rows [r0, r0 + n) W_ih^T. (The step kernels add the biases: as
// the addmm's `self`, a bias is first broadcast-copied into the whole output, a memory pass.)
void input_projection(at::Tensor& out, int64_t out_r0, const at::Tensor& X, const at::Tensor& WihT,
                      int64_t r0, int64_t n) {
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
bool few_row_steps(const at::Tensor& x, const Dims& d, int gates) {
  if (!x.is_cpu() || d.T != 1) return false;
  if (gates == 3) return d.B <= 32;
  const int64_t weights = (d.I + d.H) * gates * d.H;
  return weights >= (1 << 14) && d.B <= (weights >= (1 << 16) ? 8 : 4);
}

// The backward of one step of few rows (few_row_steps): dh += dR W_hh, and dx = dX W_ih (dx
// (1, B, I)) where asked for; dR, dX (B, G) are the gradients of the recurrent and the input
// pre-activations (the same for the LSTM).
void few_step_input_grads(at::Tensor& dh, at::Tensor& dx, const at::Tensor& dR,
                          const at::Tensor& dX, const at::Tensor& Whh, const at::Tensor& Wih,
                          bool x_grad) {
  dh.addmm_(dR, Whh);
  if (x_grad) {
    at::Tensor dx2 = dx.view({dX.size(0), Wih.size(1)});
    at::mm_out(dx2, dX, Wih);
  }
}

// W^T: a view for few_row_steps, else a contiguous copy (see transposed).
at::Tensor right_operand(const at::Tensor& w, at::ScalarType ct, bool few) {
  return few ? as_compute(w, ct).t() : transposed(w, ct);
}

// An optional bias in the compute type; zeros when absent (the kernels always add one).
at::Tensor bias_or_zeros(const OptTensor& b, int64_t n, const at::Tensor& like) {
  return defined(b) ? as_compute(*b, like.scalar_type()) : at::zeros({n}, like.options());
}

// b_ih + b_hh in the compute type (zeros for an absent one). On CPU in our own loop: for a cell
// (one step at batch 1) the dispatch of at::zeros and an ATen add cost about as much as the
// step's kernel.
at::Tensor summed_bias(const OptTensor& b_ih, const OptTensor& b_hh, int64_t n,
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

// ---------------------------------------------------------------------------------------------
// LSTM

// The LSTM forward on CPU folds the input projection into the per-step GEMM:
// gates_t = [x_t | h] (W_ih | W_hh)^T, one GEMM per step and block of rows on a (rows, I + H)
// buffer that each step refills with x_t and h (I + H columns of the block's rows, in cache),
// in place of x W_ih^T as one GEMM per chunk of steps with h W_hh^T accumulated onto it per
// step. With few inputs that projection is a thin GEMM (K = I) that writes the whole gate
// buffer to memory for the steps to read back, and it joins the threads once per chunk.
// Measured (interleaved in one process, 1 / 2 threads): the forward op took 6-22% less time on
// the benchmark shapes, training and inference, and 3-19% less with I = H, 4 H and 2 H; one
// case in twelve read 4% more (32 x 100 x 128 x 128, 2 threads). CUDA keeps the projection (one
// block, and the refill would be a copy kernel per step).
bool fold_input(const at::Tensor& x) { return x.is_cpu(); }

// Whether the LSTM forward runs the fused step (GEMM and gate math in one kernel,
// csrc/cpu/lstm_step.h): CPU float32 where cpu::lstm_step_available().
bool fused_step(const at::Tensor& x, at::ScalarType ct) {
  return x.is_cpu() && ct == at::kFloat && cpu::lstm_step_available();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstm(
    const at::Tensor& x, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_ih,
    const at::Tensor& w_hh, const OptTensor& b_ih, const OptTensor& b_hh,
    const OptTensor& lengths, bool save) {
  const Dims d = check_layer("lstm", 4, x, h0, &c0, w_ih, w_hh, b_ih, b_hh, lengths);
  c10::DeviceGuard guard(x.device());
  const StepKernels k = kernels_for(x);
  const auto ct = compute_type(x);
  const bool dbl = ct == at::kDouble;
  const int64_t es = dbl ? 8 : 4, G = 4 * d.H;
  const at::Tensor X = as_compute(x, ct).view({d.T * d.B, d.I});
  // The fused step packs its weights from w_ih and w_hh as they are; the other paths use W^T.
  const bool few = few_row_steps(x, d, 4), fused = !few && fused_step(x, ct);
  const at::Tensor WihT = fused ? at::Tensor() : right_operand(w_ih, ct, few),
                   WhhT = fused ? at::Tensor() : right_operand(w_hh, ct, few);

  // gates[t] = [x_t | h] (W_ih | W_hh)^T per step (fold_input), or x_t W_ih^T as one GEMM per
  // chunk of K steps (issued just before the chunk's steps, so that they find it in cache) with
  // h W_hh^T added in place per step; the kernel adds b_ih + b_hh and turns it into the
  // activations the backward reads. Without `save` (inference) the gates live in a ring of the
  // steps in flight (one folded, K otherwise) that stays in cache, and the cell states are not
  // kept.
  const bool fold = !few && fold_input(x);
  const int64_t K = chunk_steps(d.B, d.T, G, es);
  // The fused step in inference keeps the gates and cell states in registers: none allocated.
  const bool kept = save || !fused;
  at::Tensor gates = at::empty(
      kept ? at::IntArrayRef{save ? d.T : (fold ? 1 : std::min(K, d.T)), d.B, G} : at::IntArrayRef{0},
      X.options());
  const at::Tensor bias = summed_bias(b_ih, b_hh, G, X);
  at::Tensor h = fresh(h0, ct), c = fresh(c0, ct);
  at::Tensor y = at::empty({d.T, d.B, d.H}, X.options());
#ifdef LIGHTDL_WITH_CUDA
  if (use_loop(x, d.H, 4, dbl)) {
    // The input projection for all steps as one GEMM, then the whole loop in one launch.
    at::Tensor g = save ? gates : at::empty({d.T, d.B, G}, X.options());
    at::Tensor cs_all = at::empty(save ? at::IntArrayRef{d.T, d.B, d.H} : at::IntArrayRef{0},
                                  X.options());
    if (g.numel() > 0) {
      at::Tensor g2 = g.view({-1, G});
      at::mm_out(g2, X, WihT);
    }
    const Lengths len(lengths, x.device());
    cuda::lstm_fwd_loop(dbl, {g.data_ptr(), WhhT.const_data_ptr(), bias.const_data_ptr(),
                              nullptr, h.data_ptr(), c.data_ptr(), y.data_ptr(),
                              save ? cs_all.data_ptr() : nullptr, len.ptr, d.T, d.B, d.H});
    const auto st = x.scalar_type();
    if (!save) g = at::empty({0}, X.options());
    return {as_dtype(y, st), as_dtype(h, st), as_dtype(c, st), g, cs_all};
  }
#endif
  at::Tensor cs = at::empty(kept ? at::IntArrayRef{save ? d.T : 1, d.B, d.H} : at::IntArrayRef{0},
                            X.options());
  const Lengths len(lengths, x.device());
  void *gp = gates.data_ptr(), *hp = h.data_ptr(), *cp = c.data_ptr(), *yp = y.data_ptr(),
       *csp = cs.data_ptr();
  const void* bp = bias.const_data_ptr();
  if (fused) {
    // One kernel per step and block: the GEMM [x_t | h] (W_ih | W_hh)^T with the gate math as
    // its epilogue (csrc/cpu/lstm_step.h). h is double-buffered: every panel of a step reads
    // h_{t-1} while the step writes h_t.
    at::Tensor packed = at::empty({cpu::lstm_step_packed_size(d.I + d.H, d.H)}, X.options());
    cpu::lstm_step_pack(as_compute(w_ih, ct).const_data_ptr<float>(),
                        as_compute(w_hh, ct).const_data_ptr<float>(), d.I, d.H,
                        packed.mutable_data_ptr<float>());
    at::Tensor h_next = at::empty_like(h);
    const float* xp = X.const_data_ptr<float>();
    float *g32 = save ? gates.mutable_data_ptr<float>() : nullptr,
          *cs32 = save ? cs.mutable_data_ptr<float>() : nullptr;
    over_row_blocks(x, d.B, [&](int64_t r0, int64_t r1) {
      const int64_t n = r1 - r0;
      float* hb[2] = {h.mutable_data_ptr<float>() + r0 * d.H,
                      h_next.mutable_data_ptr<float>() + r0 * d.H};
      for (int64_t t = 0; t < d.T; ++t) {
        const int64_t row = t * d.B + r0;
        cpu::lstm_step({packed.const_data_ptr<float>(), xp + row * d.I, d.I, d.I, hb[t & 1],
                        hb[(t + 1) & 1], bias.const_data_ptr<float>(),
                        c.mutable_data_ptr<float>() + r0 * d.H, y.mutable_data_ptr<float>() + row * d.H,
                        save ? g32 + row * G : nullptr, save ? cs32 + row * d.H : nullptr,
                        len_rows(len.ptr, r0), t, n, d.H});
      }
      if (d.T & 1) std::memcpy(hb[0], hb[1], n * d.H * sizeof(float));
    });
  } else if (fold) {
    // One GEMM per step and block: [x_t | h] (W_ih | W_hh)^T, from a buffer of the block's rows
    // that each step refills (see fold_input).
    const at::Tensor Wcat = at::cat({WihT, WhhT}, 0);  // (I + H, G)
    const StepGemm step_gemm(Wcat, d.B);
    const char* xp = static_cast<const char*>(X.const_data_ptr());
    over_row_blocks(x, d.B, [&](int64_t r0, int64_t r1) {
      const int64_t n = r1 - r0, W = d.I + d.H;
      at::Tensor xh = step_gemm.split_left() ? at::Tensor() : at::empty({n, W}, X.options());
      char* xhp = xh.defined() ? static_cast<char*>(xh.data_ptr()) : nullptr;
      void* hr = row_ptr(hp, r0, d.H, es);
      for (int64_t t = 0; t < d.T; ++t) {
        const char* xt = xp + (t * d.B + r0) * d.I * es;
        void* gt = rows_at(gp, save ? t : 0, r0, d.B, G, es);
        if (step_gemm.split_left()) {  // x_t and h read where they are
          step_gemm(gt, G, xt, d.I, d.I, hr, d.H, n, false);
        } else {
          const char* ht = static_cast<const char*>(hr);
          for (int64_t r = 0; r < n; ++r) {
            std::memcpy(xhp + r * W * es, xt + r * d.I * es, d.I * es);
            std::memcpy(xhp + (r * W + d.I) * es, ht + r * d.H * es, d.H * es);
          }
          step_gemm(gt, G, xhp, W, n, false);
        }
        k.lstm_fwd(dbl, {gt, bp, row_ptr(cp, r0, d.H, es), hr,
                         rows_at(yp, t, r0, d.B, d.H, es),
                         rows_at(csp, save ? t : 0, r0, d.B, d.H, es),
                         len_rows(len.ptr, r0), t, n, d.H});
      }
    });
  } else {
    const StepGemm recurrent(WhhT, d.B);
    at::Tensor gates2 = gates.view({-1, G});
    for (int64_t c0 = 0; c0 < d.T; c0 += K) {
      const int64_t c1 = std::min(d.T, c0 + K);
      input_projection(gates2, save ? c0 * d.B : 0, X, WihT, c0 * d.B, (c1 - c0) * d.B);
      over_row_blocks(x, d.B, [&](int64_t r0, int64_t r1) {
        const int64_t n = r1 - r0;
        void* hr = row_ptr(hp, r0, d.H, es);
        for (int64_t t = c0; t < c1; ++t) {
          void* gt = rows_at(gp, save ? t : t - c0, r0, d.B, G, es);
          recurrent(gt, G, hr, d.H, n, true);
          k.lstm_fwd(dbl, {gt, bp, row_ptr(cp, r0, d.H, es), hr,
                           rows_at(yp, t, r0, d.B, d.H, es),
                           rows_at(csp, save ? t : 0, r0, d.B, d.H, es),
                           len_rows(len.ptr, r0), t, n, d.H});
        }
      });
    }
  }
  const auto st = x.scalar_type();
  if (kept && !save) gates = at::empty({0}, X.options()), cs = at::empty({0}, X.options());
  return {as_dtype(y, st), as_dtype(h, st), as_dtype(c, st), gates, cs};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstm_backward(
    const OptTensor& grad_y, const OptTensor& grad_h, const OptTensor& grad_c, const at::Tensor& x,
    const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
    const at::Tensor& y, const at::Tensor& gates, const at::Tensor& cs, const OptTensor& lengths,
    bool x_grad) {
  const char* op = "lstm_backward";
  const Dims d = check_layer(op, 4, x, h0, &c0, w_ih, w_hh, std::nullopt, std::nullopt, lengths);
  c10::DeviceGuard guard(x.device());
  const StepKernels k = kernels_for(x);
  const auto ct = compute_type(x);
  const bool dbl = ct == at::kDouble;
  const int64_t es = dbl ? 8 : 4, G = 4 * d.H;
  check_saved(gates, op, "gates", ct, {d.T, d.B, G});
  check_saved(cs, op, "cs", ct, {d.T, d.B, d.H});
  check_param(y, x, op, "y", {d.T, d.B, d.H});
  if (defined(grad_y)) check_param(*grad_y, x, op, "grad_y", {d.T, d.B, d.H});
  if (defined(grad_h)) check_param(*grad_h, x, op, "grad_h", {d.B, d.H});
  if (defined(grad_c)) check_param(*grad_c, x, op, "grad_c", {d.B, d.H});

  const at::Tensor X3 = as_compute(x, ct);
  const at::Tensor Wih = as_compute(w_ih, ct), Whh = as_compute(w_hh, ct);
  const at::Tensor H0 = as_compute(h0, ct), C0 = as_compute(c0, ct), Y3 = as_compute(y, ct);
  const at::Tensor gy = defined(grad_y) ? as_compute(*grad_y, ct) : at::Tensor();
  at::Tensor dh = defined(grad_h) ? fresh(*grad_h, ct) : at::zeros({d.B, d.H}, X3.options());
  at::Tensor dc = defined(grad_c) ? fresh(*grad_c, ct) : at::zeros({d.B, d.H}, X3.options());
  at::Tensor dx = at::empty(x_grad ? at::IntArrayRef{d.T, d.B, d.I} : at::IntArrayRef{0},
                            X3.options());
  const Lengths len(lengths, x.device());
#ifdef LIGHTDL_WITH_CUDA
  if (use_loop(x, d.H, 4, dbl)) {
    // The reverse loop in one launch writes every step's gate gradients; the weight and
    // input gradients are then single GEMMs over all steps.
    at::Tensor dG = at::empty({d.T * d.B, G}, X3.options());
    cuda::lstm_bwd_loop(dbl, {gates.const_data_ptr(), cs.const_data_ptr(), C0.const_data_ptr(),
                              nullptr, nullptr, gy.defined() ? gy.const_data_ptr() : nullptr,
                              Whh.const_data_ptr(), dh.data_ptr(), dc.data_ptr(), dG.data_ptr(),
                              nullptr, len.ptr, d.T, d.B, d.H});
    at::Tensor dW1 = at::zeros({d.I + d.H + 1, G}, X3.options());
    if (dG.numel() > 0) {
      LeftOperand L(d.T * d.B, d.I, d.H, true, true, X3.options());
      dW1.addmm_(L.fill(X3, H0, Y3, 0, d.T, 0, d.B).t(), dG);
      if (x_grad) input_grad(dx, dG, Wih, 0, d.T, 0, d.B);
    }
    const auto st = x.scalar_type();
    return {as_dtype(dx, st), as_dtype(dh, st), as_dtype(dc, st),
            as_dtype(grad_rows(dW1, 0, d.I), st), as_dtype(grad_rows(dW1, d.I, d.H), st),
            as_dtype(dW1[d.I + d.H].clone(), st)};
  }
#endif
  if (few_row_steps(x, d, 4)) {
    // One step of few rows, as in the forward: the products on the weights as they are, and
    // the weight gradients straight in their (G, .) layout (no packing, no accumulator and
    // no transposed copies, each a pass over the weights).
    at::Tensor dG = at::empty({d.B, G}, X3.options());
    k.lstm_bwd(dbl, {gates.const_data_ptr(), cs.const_data_ptr(), C0.const_data_ptr(),
                     gy.defined() ? gy.const_data_ptr() : nullptr, dh.data_ptr(), dc.data_ptr(),
                     dG.data_ptr(), len.ptr, 0, d.B, d.H});
    few_step_input_grads(dh, dx, dG, dG, Whh, Wih, x_grad);
    const auto st = x.scalar_type();
    return {as_dtype(dx, st), as_dtype(dh, st), as_dtype(dc, st),
            as_dtype(at::mm(dG.t(), X3.view({d.B, d.I})), st), as_dtype(at::mm(dG.t(), H0), st),
            as_dtype(dG.sum(0), st)};
  }
  const int64_t P = row_block_count(x, d.B);
  const StepGemm recurrent(Whh, (d.B + P - 1) / P);
  // [dW_ih | dW_hh | db]^T per block of rows, summed at the end.
  at::Tensor dWt = at::zeros({P, d.I + d.H + 1, G}, X3.options());
  const void *gp = gates.const_data_ptr(), *csp = cs.const_data_ptr(), *c0p = C0.const_data_ptr(),
             *gyp = gy.defined() ? gy.const_data_ptr() : nullptr;
  void *dhp = dh.data_ptr(), *dcp = dc.data_ptr();
  cpu::for_blocks(P, d.B, [&](int64_t p, int64_t r0, int64_t r1) {
    const int64_t n = r1 - r0, K = chunk_steps(n, d.T, G, es);
    // dG is read in place by the weight gradients' GEMM (no packed copy), and where this block
    // is the whole batch so is their left operand, from x, h0 and y (no copy into L). Against
    // packing dG and filling L per chunk, the LSTM layer's forward+backward took 1.3-4.3% less
    // time on the benchmark shapes on one thread, 1.4-6.9% on two (AVX-512, AMD EPYC Zen 5,
    // alternating processes, medians; the most at hidden 32-64); capped at AVX2, 4.1% and
    // 2.4% less at hidden 32 and 64, within noise at 128-256.
    const GradGemm grad_gemm(X3, K * n, G, /*in_place=*/true);
    const int64_t ldg = grad_gemm.row_stride();
    // One chunk of steps of this block's rows.
    at::Tensor dG = padded_rows(K * n, G, ldg, X3.options());
    const bool direct = grad_gemm.in_place() && n == d.B;
    std::optional<LeftOperand> L;
    if (!direct) L.emplace(K * n, d.I, d.H, true, true, X3.options());
    at::Tensor acc = dWt.select(0, p);
    void *dhr = row_ptr(dhp, r0, d.H, es), *dGp = dG.data_ptr();
    for (int64_t c0 = d.T > 0 ? (d.T - 1) / K * K : -1; c0 >= 0; c0 -= K) {
      const int64_t c1 = std::min(d.T, c0 + K);
      for (int64_t t = c1 - 1; t >= c0; --t) {
        void* dgt = row_ptr(dGp, (t - c0) * n, ldg, es);
        const void* cprev =
            t > 0 ? rows_at(csp, t - 1, r0, d.B, d.H, es) : row_ptr(c0p, r0, d.H, es);
        k.lstm_bwd(dbl, {rows_at(gp, t, r0, d.B, G, es),
                         rows_at(csp, t, r0, d.B, d.H, es), cprev,
                         rows_at(gyp, t, r0, d.B, d.H, es), dhr,
                         row_ptr(dcp, r0, d.H, es), dgt, len_rows(len.ptr, r0), t, n, d.H,
                         ldg});
        if (t > 0) {  // what step t - 1's kernel reads that step t's did not
          recurrent.accumulate_then(
              dhr, d.H, dgt, ldg, n,
              {{rows_at(gp, t - 1, r0, d.B, G, es), n * G * es},
               {t > 1 ? rows_at(csp, t - 2, r0, d.B, d.H, es) : row_ptr(c0p, r0, d.H, es),
                n * d.H * es},
               {rows_at(gyp, t - 1, r0, d.B, d.H, es), gyp ? n * d.H * es : 0}});
        } else {
          recurrent(dhr, d.H, dgt, ldg, n, true);
        }
      }
      const at::Tensor g2 = dG.narrow(0, 0, (c1 - c0) * n);
      if (direct) grad_gemm.from_layer(acc, X3, H0, Y3, c0, c1, g2);
      else grad_gemm(acc, L->fill(X3, H0, Y3, c0, c1, r0, n), g2);
      if (x_grad) input_grad(dx, g2, Wih, c0, c1 - c0, r0, n);
    }
  });
  dWt = (P > 1 ? dWt.sum(0, true) : dWt)[0];
  const auto st = x.scalar_type();
  return {as_dtype(dx, st),
          as_dtype(dh, st),
          as_dtype(dc, st),
          as_dtype(grad_rows(dWt, 0, d.I), st),
          as_dtype(grad_rows(dWt, d.I, d.H), st),
          as_dtype(dWt[d.I + d.H].clone(), st)};
}

// ---------------------------------------------------------------------------------------------
// GRU

std::tuple<at::Tensor, at::Tensor, at::Tensor> gru(const at::Tensor& x, const at::Tensor& h0,
                                                   const at::Tensor& w_ih, const at::Tensor& w_hh,
                                                   const OptTensor& b_ih, const OptTensor& b_hh,
                                                   const OptTensor& lengths, bool save) {
  const Dims d = check_layer("gru", 3, x, h0, nullptr, w_ih, w_hh, b_ih, b_hh, lengths);
  c10::DeviceGuard guard(x.device());
  const StepKernels k = kernels_for(x);
  const auto ct = compute_type(x);
  const bool dbl = ct == at::kDouble;
  const int64_t es = dbl ? 8 : 4, G = 3 * d.H;
  const at::Tensor X = as_compute(x, ct).view({d.T * d.B, d.I});
  const bool few = few_row_steps(x, d, 3);
  const at::Tensor WihT = right_operand(w_ih, ct, few), WhhT = right_operand(w_hh, ct, few);
  // xg = x W_ih^T, one GEMM per chunk of K steps (as for the LSTM); per step hg = h W_hh^T;
  // the kernel adds b_ih and b_hh (b_hn must stay apart from b_in: it is multiplied by r).
  const int64_t K = chunk_steps(d.B, d.T, G, es);
  at::Tensor xg = at::empty({(save ? d.T : std::min(K, d.T)) * d.B, G}, X.options());
  const at::Tensor Bih = bias_or_zeros(b_ih, G, X), Bhh = bias_or_zeros(b_hh, G, X);
  at::Tensor hg = at::empty({d.B, G}, X.options());
  at::Tensor h = fresh(h0, ct);
  at::Tensor y = at::empty({d.T, d.B, d.H}, X.options());
  at::Tensor saved = at::empty({save ? d.T : 1, d.B, 4 * d.H}, X.options());
  const Lengths len(lengths, x.device());
  const auto st = x.scalar_type();
#ifdef LIGHTDL_WITH_CUDA
  if (use_loop(x, d.H, 3, dbl)) {
    // The input projection for all steps as one GEMM, then the whole loop in one launch.
    at::Tensor xg_all = save ? xg.view({d.T, d.B, G}) : at::empty({d.T, d.B, G}, X.options());
    if (xg_all.numel() > 0) {
      at::Tensor x2 = xg_all.view({-1, G});
      at::mm_out(x2, X, WihT);
    }
    cuda::gru_fwd_loop(dbl, {xg_all.data_ptr(), WhhT.const_data_ptr(), Bih.const_data_ptr(),
                             Bhh.const_data_ptr(), h.data_ptr(), nullptr, y.data_ptr(),
                             save ? saved.data_ptr() : nullptr, len.ptr, d.T, d.B, d.H});
    if (!save) saved = at::empty({0}, X.options());
    return {as_dtype(y, st), as_dtype(h, st), saved};
  }
#endif
  const StepGemm recurrent(WhhT, d.B);
  void *xgp = xg.data_ptr(), *hgp = hg.data_ptr(), *hp = h.data_ptr(), *yp = y.data_ptr(),
       *sp = saved.data_ptr();
  const void *bip = Bih.const_data_ptr(), *bhp = Bhh.const_data_ptr();
  for (int64_t c0 = 0; c0 < d.T; c0 += K) {
    const int64_t c1 = std::min(d.T, c0 + K);
    input_projection(xg, save ? c0 * d.B : 0, X, WihT, c0 * d.B, (c1 - c0) * d.B);
    over_row_blocks(x, d.B, [&](int64_t r0, int64_t r1) {
      const int64_t n = r1 - r0;
      void *hr = row_ptr(hp, r0, d.H, es), *hgr = row_ptr(hgp, r0, G, es);
      for (int64_t t = c0; t < c1; ++t) {
        recurrent(hgr, G, hr, d.H, n, false);
        k.gru_fwd(dbl, {rows_at(xgp, save ? t : t - c0, r0, d.B, G, es), hgr,
                        bip, bhp, hr, rows_at(yp, t, r0, d.B, d.H, es),
                        rows_at(sp, save ? t : 0, r0, d.B, 4 * d.H, es),
                        len_rows(len.ptr, r0), t, n, d.H});
      }
    });
  }
  if (!save) saved = at::empty({0}, X.options());
  return {as_dtype(y, st), as_dtype(h, st), saved};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> gru_backward(
    const OptTensor& grad_y, const OptTensor& grad_h, const at::Tensor& x, const at::Tensor& h0,
    const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& y, const at::Tensor& saved,
    const OptTensor& lengths, bool x_grad) {
  const char* op = "gru_backward";
  const Dims d = check_layer(op, 3, x, h0, nullptr, w_ih, w_hh, std::nullopt, std::nullopt, lengths);
  c10::DeviceGuard guard(x.device());
  const StepKernels k = kernels_for(x);
  const auto ct = compute_type(x);
  const bool dbl = ct == at::kDouble;
  const int64_t es = dbl ? 8 : 4, G = 3 * d.H;
  check_saved(saved, op, "saved", ct, {d.T, d.B, 4 * d.H});
  check_param(y, x, op, "y", {d.T, d.B, d.H});
  if (defined(grad_y)) check_param(*grad_y, x, op, "grad_y", {d.T, d.B, d.H});
  if (defined(grad_h)) check_param(*grad_h, x, op, "grad_h", {d.B, d.H});

  const at::Tensor X3 = as_compute(x, ct);
  const at::Tensor Wih = as_compute(w_ih, ct), Whh = as_compute(w_hh, ct);
  const at::Tensor H0 = as_compute(h0, ct), Y3 = as_compute(y, ct);
  const at::Tensor gy = defined(grad_y) ? as_compute(*grad_y, ct) : at::Tensor();
  at::Tensor dh = defined(grad_h) ? fresh(*grad_h, ct) : at::zeros({d.B, d.H}, X3.options());
  at::Tensor dx = at::empty(x_grad ? at::IntArrayRef{d.T, d.B, d.I} : at::IntArrayRef{0},
                            X3.options());
  const Lengths len(lengths, x.device());
#ifdef LIGHTDL_WITH_CUDA
  if (use_loop(x, d.H, 3, dbl)) {
    at::Tensor dXg = at::empty({d.T * d.B, G}, X3.options());
    at::Tensor dHg = at::empty({d.T * d.B, G}, X3.options());
    cuda::gru_bwd_loop(dbl, {saved.const_data_ptr(), nullptr, nullptr, Y3.const_data_ptr(),
                             H0.const_data_ptr(), gy.defined() ? gy.const_data_ptr() : nullptr,
                             Whh.const_data_ptr(), dh.data_ptr(), nullptr, dXg.data_ptr(),
                             dHg.data_ptr(), len.ptr, d.T, d.B, d.H});
    at::Tensor dWi = at::zeros({d.I + 1, G}, X3.options());
    at::Tensor dWh = at::zeros({d.H + 1, G}, X3.options());
    if (dXg.numel() > 0) {
      LeftOperand Lx(d.T * d.B, d.I, d.H, true, false, X3.options());
      LeftOperand Lh(d.T * d.B, d.I, d.H, false, true, X3.options());
      dWi.addmm_(Lx.fill(X3, H0, Y3, 0, d.T, 0, d.B).t(), dXg);
      dWh.addmm_(Lh.fill(X3, H0, Y3, 0, d.T, 0, d.B).t(), dHg);
      if (x_grad) input_grad(dx, dXg, Wih, 0, d.T, 0, d.B);
    }
    const auto st = x.scalar_type();
    return {as_dtype(dx, st), as_dtype(dh, st), as_dtype(grad_rows(dWi, 0, d.I), st),
            as_dtype(grad_rows(dWh, 0, d.H), st), as_dtype(dWi[d.I].clone(), st),
            as_dtype(dWh[d.H].clone(), st)};
  }
#endif
  if (few_row_steps(x, d, 3)) {  // as in the LSTM backward above
    at::Tensor dXg = at::empty({d.B, G}, X3.options()), dHg = at::empty({d.B, G}, X3.options());
    k.gru_bwd(dbl, {saved.const_data_ptr(), H0.const_data_ptr(),
                    gy.defined() ? gy.const_data_ptr() : nullptr, dh.data_ptr(), dXg.data_ptr(),
                    dHg.data_ptr(), len.ptr, 0, d.B, d.H});
    few_step_input_grads(dh, dx, dHg, dXg, Whh, Wih, x_grad);
    const auto st = x.scalar_type();
    return {as_dtype(dx, st), as_dtype(dh, st),
            as_dtype(at::mm(dXg.t(), X3.view({d.B, d.I})), st), as_dtype(at::mm(dHg.t(), H0), st),
            as_dtype(dXg.sum(0), st), as_dtype(dHg.sum(0), st)};
  }
  const int64_t P = row_block_count(x, d.B);
  const StepGemm recurrent(Whh, (d.B + P - 1) / P);
  // [dW_ih | db_ih]^T and [dW_hh | db_hh]^T per block of rows, summed at the end.
  at::Tensor dWih_t = at::zeros({P, d.I + 1, G}, X3.options());
  at::Tensor dWhh_t = at::zeros({P, d.H + 1, G}, X3.options());
  const void *sp = saved.const_data_ptr(), *Yp = Y3.const_data_ptr(), *h0p = H0.const_data_ptr(),
             *gyp = gy.defined() ? gy.const_data_ptr() : nullptr;
  void* dhp = dh.data_ptr();
  cpu::for_blocks(P, d.B, [&](int64_t p, int64_t r0, int64_t r1) {
    const int64_t n = r1 - r0, K = chunk_steps(n, d.T, 2 * G, es);
    // One chunk of steps of this block's rows, input side and hidden side.
    at::Tensor dXg = at::empty({K * n, G}, X3.options()), dHg = at::empty({K * n, G}, X3.options());
    LeftOperand Lx(K * n, d.I, d.H, true, false, X3.options());
    LeftOperand Lh(K * n, d.I, d.H, false, true, X3.options());
    const GradGemm grad_gemm(X3, K * n, G);
    at::Tensor acc_x = dWih_t.select(0, p), acc_h = dWhh_t.select(0, p);
    void *dhr = row_ptr(dhp, r0, d.H, es), *dXgp = dXg.data_ptr(), *dHgp = dHg.data_ptr();
    for (int64_t c0 = d.T > 0 ? (d.T - 1) / K * K : -1; c0 >= 0; c0 -= K) {
      const int64_t c1 = std::min(d.T, c0 + K);
      for (int64_t t = c1 - 1; t >= c0; --t) {
        void* dxgt = row_ptr(dXgp, (t - c0) * n, G, es);
        void* dhgt = row_ptr(dHgp, (t - c0) * n, G, es);
        const void* hprev =
            t > 0 ? rows_at(Yp, t - 1, r0, d.B, d.H, es) : row_ptr(h0p, r0, d.H, es);
        k.gru_bwd(dbl, {rows_at(sp, t, r0, d.B, 4 * d.H, es),
                        hprev,
                        rows_at(gyp, t, r0, d.B, d.H, es), dhr, dxgt,
                        dhgt, len_rows(len.ptr, r0), t, n, d.H});
        if (t > 0) {  // step t - 1's rows, as in the LSTM backward
          recurrent.accumulate_then(
              dhr, d.H, dhgt, G, n,
              {{rows_at(sp, t - 1, r0, d.B, 4 * d.H, es), n * 4 * d.H * es},
               {t > 1 ? rows_at(Yp, t - 2, r0, d.B, d.H, es) : row_ptr(h0p, r0, d.H, es),
                n * d.H * es},
               {rows_at(gyp, t - 1, r0, d.B, d.H, es), gyp ? n * d.H * es : 0}});
        } else {
          recurrent(dhr, d.H, dhgt, G, n, true);
        }
      }
      const int64_t m = (c1 - c0) * n;
      const at::Tensor gx2 = dXg.narrow(0, 0, m), gh2 = dHg.narrow(0, 0, m);
      grad_gemm(acc_x, Lx.fill(X3, H0, Y3, c0, c1, r0, n), gx2);
      grad_gemm(acc_h, Lh.fill(X3, H0, Y3, c0, c1, r0, n), gh2);
      if (x_grad) input_grad(dx, gx2, Wih, c0, c1 - c0, r0, n);
    }
  });
  dWih_t = (P > 1 ? dWih_t.sum(0, true) : dWih_t)[0];
  dWhh_t = (P > 1 ? dWhh_t.sum(0, true) : dWhh_t)[0];
  const auto st = x.scalar_type();
  return {as_dtype(dx, st),
          as_dtype(dh, st),
          as_dtype(grad_rows(dWih_t, 0, d.I), st),
          as_dtype(grad_rows(dWhh_t, 0, d.H), st),
          as_dtype(dWih_t[d.I].clone(), st),
          as_dtype(dWhh_t[d.H].clone(), st)};
}

}  // namespace
}  // namespace lightdl

TORCH_LIBRARY_IMPL(lightdl, CPU, m) {
  m.impl("lstm", &lightdl::lstm);
  m.impl("lstm_backward", &lightdl::lstm_backward);
  m.impl("gru", &lightdl::gru);
  m.impl("gru_backward", &lightdl::gru_backward);
}

#ifdef LIGHTDL_WITH_CUDA
TORCH_LIBRARY_IMPL(lightdl, CUDA, m) {
  m.impl("lstm", &lightdl::lstm);
  m.impl("lstm_backward", &lightdl::lstm_backward);
  m.impl("gru", &lightdl::gru);
  m.impl("gru_backward", &lightdl::gru_backward);
}
#endif

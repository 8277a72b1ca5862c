// The GEMMs of the LSTM and GRU time loops (csrc/rnn_layer.h): the per-step recurrent
// product (StepGemm), the weight gradients of a chunk of steps (GradGemm) and their left
// operand [x_t | h_(t-1) | 1] (LeftOperand).
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <vector>

#include "cpu/packed_gemm.h"
#include "cpu/step_gemm.h"

namespace lightdl::rnn_layer {

// The per-step recurrent product C (+)= A W, W (k x n) the same for every step. On CPU in
// float32: lightdl's step GEMM on AVX2 and AMD AVX-512 hosts (csrc/cpu/step_gemm.h), MKL's
// packed GEMM elsewhere (csrc/cpu/packed_gemm.cpp: 4-30% less time per step than
// at::addmm_out on the benchmark shapes); either way W is packed once per call and no ATen
// call is made per step.
// (at::addmm_out for CUDA and double.) A and C are blocks of contiguous rows.
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
inline at::Tensor padded_rows(int64_t rows, int64_t n, int64_t ld, const at::TensorOptions& o) {
  if (ld == n) return at::empty({rows, n}, o);
  at::Tensor buf = at::empty({rows, ld}, o);
  buf.narrow(1, n, ld - n).zero_();
  return buf.narrow(1, 0, n);
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

}  // namespace lightdl::rnn_layer

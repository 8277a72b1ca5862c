// The LSTM layer ops, lightdl::lstm and lightdl::lstm_backward, on CPU and CUDA: the time
// loops of csrc/rnn_layer.h with the LSTM's step kernels (on CPU float32, its fused forward
// step, csrc/cpu/lstm_step.h).
#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <tuple>

#include "cpu/lstm_step.h"
#include "rnn_gemm.h"
#include "rnn_layer.h"

namespace lightdl {
namespace {

using namespace rnn_layer;

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

}  // namespace
}  // namespace lightdl

TORCH_LIBRARY_IMPL(lightdl, CPU, m) {
  m.impl("lstm", &lightdl::lstm);
  m.impl("lstm_backward", &lightdl::lstm_backward);
}

#ifdef LIGHTDL_WITH_CUDA
TORCH_LIBRARY_IMPL(lightdl, CUDA, m) {
  m.impl("lstm", &lightdl::lstm);
  m.impl("lstm_backward", &lightdl::lstm_backward);
}
#endif

// The GRU layer ops, lightdl::gru and lightdl::gru_backward, on CPU and CUDA: the time loops
// of csrc/rnn_layer.h with the GRU's step kernels.
#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <tuple>

#include "rnn_gemm.h"
#include "rnn_layer.h"

namespace lightdl {
namespace {

using namespace rnn_layer;

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
  m.impl("gru", &lightdl::gru);
  m.impl("gru_backward", &lightdl::gru_backward);
}

#ifdef LIGHTDL_WITH_CUDA
TORCH_LIBRARY_IMPL(lightdl, CUDA, m) {
  m.impl("gru", &lightdl::gru);
  m.impl("gru_backward", &lightdl::gru_backward);
}
#endif

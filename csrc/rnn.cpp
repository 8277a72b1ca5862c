// The LSTM and GRU layers (lightdl::lstm, lightdl::gru and their backward ops): one
// device-generic time loop for CPU and CUDA.
//
// Forward: the input projection of all T steps is one GEMM; each step is one recurrent GEMM
// (at::addmm_out into a preallocated buffer, so no allocation per step) and one pointwise
// kernel (csrc/rnn_kernels.h) called directly on raw pointers. The forward returns, besides
// (y, h_T, c_T), what the backward needs: the gate activations of every step and (LSTM) the
// cell states.
// Backward: the reverse loop runs one pointwise kernel and one GEMM (dh += dG_t W_hh) per
// step and keeps every step's gate gradients dG; the weight gradients are then single large
// GEMMs over all steps (dW_ih = dG^T X, dW_hh = dG^T H_prev, db = column sums of dG).
//
// float16/bfloat16 inputs are computed in float32 (GEMMs, gates and states), and the returned
// intermediates stay float32; y, h_T, c_T and the gradients are rounded to the input dtype.
#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "checks.h"
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
  return t.to(t.options().dtype(ct), false, false, at::MemoryFormat::Contiguous);
}

// A fresh, writable copy in the compute type (the time loop updates it in place).
at::Tensor fresh(const at::Tensor& t, at::ScalarType ct) {
  return t.to(t.options().dtype(ct), false, true, at::MemoryFormat::Contiguous);
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
    dev = l->to(device, at::kLong, false, false, at::MemoryFormat::Contiguous);
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

// Row t of a (T, rows, cols) contiguous buffer.
template <typename P>
P* step_ptr(P* base, int64_t t, int64_t stride, int64_t esize) {
  using C = std::conditional_t<std::is_const_v<P>, const char, char>;
  return reinterpret_cast<P*>(reinterpret_cast<C*>(base) + t * stride * esize);
}

// dW_hh = sum_t dG_t^T h_{t-1}, with h_{-1} = h0 and h_{t-1} = y_{t-1} otherwise (a row past
// its sequence end has dG = 0, so the zeros y holds there never matter): two GEMMs, no copy.
at::Tensor grad_w_hh(const at::Tensor& dG, const at::Tensor& h0, const at::Tensor& y) {
  const int64_t T = dG.size(0), G = dG.size(2), H = h0.size(1);
  if (T == 0) return at::zeros({G, H}, h0.options());
  at::Tensor dw = at::mm(dG[0].t(), h0);
  if (T > 1)
    dw.addmm_(dG.narrow(0, 1, T - 1).reshape({-1, G}).t(), y.narrow(0, 0, T - 1).reshape({-1, H}));
  return dw;
}

// ---------------------------------------------------------------------------------------------
// LSTM

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstm(
    const at::Tensor& x, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_ih,
    const at::Tensor& w_hh, const OptTensor& b_ih, const OptTensor& b_hh,
    const OptTensor& lengths) {
  const Dims d = check_layer("lstm", 4, x, h0, &c0, w_ih, w_hh, b_ih, b_hh, lengths);
  c10::DeviceGuard guard(x.device());
  const StepKernels k = kernels_for(x);
  const auto ct = compute_type(x);
  const bool dbl = ct == at::kDouble;
  const int64_t es = dbl ? 8 : 4, G = 4 * d.H;
  const at::Tensor X = as_compute(x, ct).view({d.T * d.B, d.I});
  const at::Tensor Wih = as_compute(w_ih, ct), WhhT = as_compute(w_hh, ct).t();

  // gates[t] = x_t W_ih^T + b_ih + b_hh for all t in one GEMM; each step adds h W_hh^T in
  // place and the kernel turns it into the activations the backward reads.
  at::Tensor gates = at::empty({d.T, d.B, G}, X.options());
  at::Tensor gates2 = gates.view({d.T * d.B, G});
  if (defined(b_ih) || defined(b_hh)) {
    at::Tensor bias = defined(b_ih) ? as_compute(*b_ih, ct) : as_compute(*b_hh, ct);
    if (defined(b_ih) && defined(b_hh)) bias = bias + as_compute(*b_hh, ct);
    at::addmm_out(gates2, bias, X, Wih.t());
  } else {
    at::mm_out(gates2, X, Wih.t());
  }
  at::Tensor h = fresh(h0, ct), c = fresh(c0, ct);
  at::Tensor y = at::empty({d.T, d.B, d.H}, X.options());
  at::Tensor cs = at::empty({d.T, d.B, d.H}, X.options());
  const Lengths len(lengths, x.device());
  for (int64_t t = 0; t < d.T; ++t) {
    at::Tensor gt = gates.select(0, t);
    at::addmm_out(gt, gt, h, WhhT);
    k.lstm_fwd(dbl, {gt.data_ptr(), c.data_ptr(), h.data_ptr(),
                     step_ptr(y.data_ptr(), t, d.B * d.H, es),
                     step_ptr(cs.data_ptr(), t, d.B * d.H, es), len.ptr, t, d.B, d.H});
  }
  const auto st = x.scalar_type();
  return {as_dtype(y, st), as_dtype(h, st), as_dtype(c, st), gates, cs};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstm_backward(
    const OptTensor& grad_y, const OptTensor& grad_h, const OptTensor& grad_c, const at::Tensor& x,
    const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
    const at::Tensor& y, const at::Tensor& gates, const at::Tensor& cs, const OptTensor& lengths) {
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

  const at::Tensor X = as_compute(x, ct).view({d.T * d.B, d.I});
  const at::Tensor Wih = as_compute(w_ih, ct), Whh = as_compute(w_hh, ct);
  const at::Tensor H0 = as_compute(h0, ct), C0 = as_compute(c0, ct);
  const at::Tensor gy = defined(grad_y) ? as_compute(*grad_y, ct) : at::Tensor();
  at::Tensor dh = defined(grad_h) ? fresh(*grad_h, ct) : at::zeros({d.B, d.H}, X.options());
  at::Tensor dc = defined(grad_c) ? fresh(*grad_c, ct) : at::zeros({d.B, d.H}, X.options());
  at::Tensor dG = at::empty({d.T, d.B, G}, X.options());
  const Lengths len(lengths, x.device());
  const int64_t BH = d.B * d.H;
  for (int64_t t = d.T - 1; t >= 0; --t) {
    at::Tensor dgt = dG.select(0, t);
    k.lstm_bwd(dbl, {step_ptr(gates.const_data_ptr(), t, d.B * G, es),
                     step_ptr(cs.const_data_ptr(), t, BH, es),
                     t > 0 ? step_ptr(cs.const_data_ptr(), t - 1, BH, es) : C0.const_data_ptr(),
                     gy.defined() ? step_ptr(gy.const_data_ptr(), t, BH, es) : nullptr,
                     dh.data_ptr(), dc.data_ptr(), dgt.data_ptr(), len.ptr, t, d.B, d.H});
    at::addmm_out(dh, dh, dgt, Whh);
  }
  const at::Tensor dG2 = dG.view({d.T * d.B, G});
  const auto st = x.scalar_type();
  at::Tensor dx = at::mm(dG2, Wih).view({d.T, d.B, d.I});
  at::Tensor dw_ih = at::mm(dG2.t(), X);
  at::Tensor dw_hh = grad_w_hh(dG, H0, as_compute(y, ct));
  at::Tensor db = dG2.sum(0);
  return {as_dtype(dx, st), as_dtype(dh, st),    as_dtype(dc, st),
          as_dtype(dw_ih, st), as_dtype(dw_hh, st), as_dtype(db, st)};
}

// ---------------------------------------------------------------------------------------------
// GRU

std::tuple<at::Tensor, at::Tensor, at::Tensor> gru(const at::Tensor& x, const at::Tensor& h0,
                                                   const at::Tensor& w_ih, const at::Tensor& w_hh,
                                                   const OptTensor& b_ih, const OptTensor& b_hh,
                                                   const OptTensor& lengths) {
  const Dims d = check_layer("gru", 3, x, h0, nullptr, w_ih, w_hh, b_ih, b_hh, lengths);
  c10::DeviceGuard guard(x.device());
  const StepKernels k = kernels_for(x);
  const auto ct = compute_type(x);
  const bool dbl = ct == at::kDouble;
  const int64_t es = dbl ? 8 : 4, G = 3 * d.H;
  const at::Tensor X = as_compute(x, ct).view({d.T * d.B, d.I});
  const at::Tensor Wih = as_compute(w_ih, ct), WhhT = as_compute(w_hh, ct).t();
  // xg = x W_ih^T + b_ih for all steps; per step hg = h W_hh^T + b_hh (b_hn must stay apart
  // from b_in: it is multiplied by r).
  at::Tensor xg = at::empty({d.T * d.B, G}, X.options());
  if (defined(b_ih))
    at::addmm_out(xg, as_compute(*b_ih, ct), X, Wih.t());
  else
    at::mm_out(xg, X, Wih.t());
  const at::Tensor Bhh = defined(b_hh) ? as_compute(*b_hh, ct) : at::Tensor();
  at::Tensor hg = at::empty({d.B, G}, X.options());
  at::Tensor h = fresh(h0, ct);
  at::Tensor y = at::empty({d.T, d.B, d.H}, X.options());
  at::Tensor saved = at::empty({d.T, d.B, 4 * d.H}, X.options());
  const Lengths len(lengths, x.device());
  for (int64_t t = 0; t < d.T; ++t) {
    if (Bhh.defined())
      at::addmm_out(hg, Bhh, h, WhhT);
    else
      at::mm_out(hg, h, WhhT);
    k.gru_fwd(dbl, {step_ptr(xg.const_data_ptr(), t, d.B * G, es), hg.const_data_ptr(),
                    h.data_ptr(), step_ptr(y.data_ptr(), t, d.B * d.H, es),
                    step_ptr(saved.data_ptr(), t, d.B * 4 * d.H, es), len.ptr, t, d.B, d.H});
  }
  const auto st = x.scalar_type();
  return {as_dtype(y, st), as_dtype(h, st), saved};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> gru_backward(
    const OptTensor& grad_y, const OptTensor& grad_h, const at::Tensor& x, const at::Tensor& h0,
    const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& y, const at::Tensor& saved,
    const OptTensor& lengths) {
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

  const at::Tensor X = as_compute(x, ct).view({d.T * d.B, d.I});
  const at::Tensor Wih = as_compute(w_ih, ct), Whh = as_compute(w_hh, ct);
  const at::Tensor H0 = as_compute(h0, ct), Y = as_compute(y, ct);
  const at::Tensor gy = defined(grad_y) ? as_compute(*grad_y, ct) : at::Tensor();
  at::Tensor dh = defined(grad_h) ? fresh(*grad_h, ct) : at::zeros({d.B, d.H}, X.options());
  at::Tensor dX = at::empty({d.T, d.B, G}, X.options());
  at::Tensor dHg = at::empty({d.T, d.B, G}, X.options());
  const Lengths len(lengths, x.device());
  const int64_t BH = d.B * d.H;
  for (int64_t t = d.T - 1; t >= 0; --t) {
    at::Tensor dhgt = dHg.select(0, t);
    k.gru_bwd(dbl, {step_ptr(saved.const_data_ptr(), t, d.B * 4 * d.H, es),
                    t > 0 ? step_ptr(Y.const_data_ptr(), t - 1, BH, es) : H0.const_data_ptr(),
                    gy.defined() ? step_ptr(gy.const_data_ptr(), t, BH, es) : nullptr,
                    dh.data_ptr(), step_ptr(dX.data_ptr(), t, d.B * G, es), dhgt.data_ptr(),
                    len.ptr, t, d.B, d.H});
    at::addmm_out(dh, dh, dhgt, Whh);
  }
  const at::Tensor dX2 = dX.view({d.T * d.B, G}), dHg2 = dHg.view({d.T * d.B, G});
  const auto st = x.scalar_type();
  at::Tensor dx = at::mm(dX2, Wih).view({d.T, d.B, d.I});
  at::Tensor dw_ih = at::mm(dX2.t(), X);
  at::Tensor dw_hh = grad_w_hh(dHg, H0, Y);
  return {as_dtype(dx, st),    as_dtype(dh, st),           as_dtype(dw_ih, st),
          as_dtype(dw_hh, st), as_dtype(dX2.sum(0), st), as_dtype(dHg2.sum(0), st)};
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

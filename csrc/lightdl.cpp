// The lightdl operator library: every op's schema, declared once. Device kernels live in
// csrc/cpu/*.cpp and csrc/cuda/*.cu (TORCH_LIBRARY_IMPL); autograd formulas and fake kernels
// are registered from Python (lightdl/ops/*.py). pybind11 is used only for build information.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/extension.h>
#include <torch/library.h>

#include "checks.h"

namespace lightdl {

// fused_linear = one GEMM (the vendor BLAS via at::matmul/addmm) + our bias+activation
// epilogue. Returns (out, preact): preact is the GEMM output without bias, which the backward
// epilogue (bias_act_backward) needs; for act == identity nothing is needed and preact is an
// empty tensor, so identity costs exactly one addmm.
static std::tuple<at::Tensor, at::Tensor> fused_linear(const at::Tensor& x,
                                                       const at::Tensor& weight,
                                                       const std::optional<at::Tensor>& bias,
                                                       c10::string_view act, double alpha) {
  const char* op = "fused_linear";
  check_float_tensor(x, op, "x");
  TORCH_CHECK_VALUE(x.dim() >= 1, op, ": `x` must have at least 1 dim, got a scalar");
  TORCH_CHECK_VALUE(weight.dim() == 2 && weight.size(1) == x.size(-1), op,
                    ": `weight` must have shape (out_features, ", x.size(-1), "), got ",
                    weight.sizes());
  TORCH_CHECK_TYPE(weight.scalar_type() == x.scalar_type(), op, ": `weight` dtype ",
                   weight.scalar_type(), " differs from `x` dtype ", x.scalar_type());
  TORCH_CHECK_VALUE(weight.device() == x.device(), op, ": `weight` is on ", weight.device(),
                    " but `x` is on ", x.device());
  const bool has_bias = bias.has_value() && bias->defined();
  if (has_bias) {
    TORCH_CHECK_VALUE(bias->dim() == 1 && bias->size(0) == weight.size(0), op,
                      ": `bias` must have shape (", weight.size(0), ",), got ", bias->sizes());
    TORCH_CHECK_TYPE(bias->scalar_type() == x.scalar_type(), op, ": `bias` dtype ",
                     bias->scalar_type(), " differs from `x` dtype ", x.scalar_type());
    TORCH_CHECK_VALUE(bias->device() == x.device(), op, ": `bias` is on ", bias->device(),
                      " but `x` is on ", x.device());
  }
  const Act a = parse_act(std::string(act));
  auto out_sizes = x.sizes().vec();
  out_sizes.back() = weight.size(0);
  // Flatten leading dims: the epilogue sees a (rows, out_features) matrix, bias along dim 1.
  at::Tensor x2 = x.reshape({-1, x.size(-1)});
  if (a == Act::Identity) {
    at::Tensor out = has_bias ? at::addmm(*bias, x2, weight.t()) : at::mm(x2, weight.t());
    return {out.view(out_sizes), at::empty({0}, x.options())};
  }
  at::Tensor pre = at::mm(x2, weight.t());
  static auto bias_act_op = c10::Dispatcher::singleton()
                                .findSchemaOrThrow("lightdl::bias_act", "")
                                .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                                  c10::string_view, double)>();
  static auto act_op = c10::Dispatcher::singleton()
                           .findSchemaOrThrow("lightdl::activation", "")
                           .typed<at::Tensor(const at::Tensor&, c10::string_view, double)>();
  at::Tensor out = has_bias ? bias_act_op.call(pre, *bias, act, alpha) : act_op.call(pre, act, alpha);
  return {out.view(out_sizes), pre.view(out_sizes)};
}

// Autocast like the op whose epilogue this is (linear/conv): floating inputs are cast to the
// autocast dtype the user chose (CPU: bfloat16 by default, CUDA: float16).
template <c10::DeviceType DT>
static at::Tensor bias_act_autocast(const at::Tensor& x, const at::Tensor& bias,
                                    c10::string_view act, double alpha) {
  c10::impl::ExcludeDispatchKeyGuard guard(at::autocast::get_autocast_dispatch_key_from_device_type(DT));
  const auto dtype = at::autocast::get_lower_precision_fp_from_device_type(DT);
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("lightdl::bias_act", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, c10::string_view,
                                         double)>();
  return op.call(at::autocast::cached_cast(dtype, x, DT), at::autocast::cached_cast(dtype, bias, DT),
                 act, alpha);
}

template <c10::DeviceType DT>
static std::tuple<at::Tensor, at::Tensor> fused_linear_autocast(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    c10::string_view act, double alpha) {
  c10::impl::ExcludeDispatchKeyGuard guard(at::autocast::get_autocast_dispatch_key_from_device_type(DT));
  const auto dtype = at::autocast::get_lower_precision_fp_from_device_type(DT);
  std::optional<at::Tensor> b;
  if (bias.has_value() && bias->defined()) b = at::autocast::cached_cast(dtype, *bias, DT);
  // Through the dispatcher, so the autograd formula registered from Python still applies.
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("lightdl::fused_linear", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                           c10::string_view, double)>();
  return op.call(at::autocast::cached_cast(dtype, x, DT),
                 at::autocast::cached_cast(dtype, weight, DT), b, act, alpha);
}

}  // namespace lightdl

TORCH_LIBRARY(lightdl, m) {
  // act(x), elementwise.
  m.def("activation(Tensor x, str act, float alpha=0.01) -> Tensor");
  // grad * act'(x). With x_is_output (sigmoid and tanh only), `x` is the forward output y
  // and the derivative is taken from it (y(1-y), 1-y^2): no exp or division.
  m.def(
      "activation_backward(Tensor grad, Tensor x, str act, float alpha=0.01, "
      "bool x_is_output=False) -> Tensor");
  // act(x + bias[None, :, None, ...]); bias along dim 1.
  m.def("bias_act(Tensor x, Tensor bias, str act, float alpha=0.01) -> Tensor");
  // (grad_x, grad_bias) in one pass: grad_x = grad * act'(x + bias), grad_bias = sum of grad_x
  // over every dim but 1. x_is_output as for activation_backward (then `x` is act(x + bias)).
  m.def(
      "bias_act_backward(Tensor grad, Tensor x, Tensor bias, str act, float alpha=0.01, "
      "bool x_is_output=False) -> (Tensor, Tensor)");
  // (act(x @ weight.T + bias), x @ weight.T)
  m.def(
      "fused_linear(Tensor x, Tensor weight, Tensor? bias, str act, float alpha=0.01) -> "
      "(Tensor, Tensor)");

  // ---- fused_conv1d (csrc/conv1d.cpp) ----
  // (act(conv1d(x, weight) + bias), conv1d(x, weight) + bias): the second output is what the
  // backward needs, an empty tensor when it needs none (the direct path, which recomputes it;
  // act == identity; sigmoid/tanh in float32/float64, whose derivative is taken from the first
  // output). groups > 1 runs the vendor convolution; padding is symmetric (the Python wrapper
  // resolves "same"/"valid").
  m.def(
      "fused_conv1d(Tensor x, Tensor weight, Tensor? bias, int stride=1, int padding=0, "
      "int dilation=1, int groups=1, str act='identity', float alpha=0.01) -> (Tensor, Tensor)");
  // (grad_x, grad_weight, grad_bias) with act' applied once; `saved` is the forward's second
  // output, or its first for sigmoid/tanh in float32/float64. Gradients left out by
  // output_mask (and grad_bias without a bias) are empty tensors.
  m.def(
      "fused_conv1d_backward(Tensor grad, Tensor x, Tensor weight, Tensor? bias, Tensor saved, "
      "int stride, int padding, int dilation, int groups, str act, float alpha, "
      "bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
  // ---- end fused_conv1d ----

  // ---- act_pool1d (csrc/cpu/act_pool.cpp, csrc/cuda/act_pool.cu) ----
  // pool(act(x)) over the last dim of x (N, C, L): pool 'max' or 'avg' (zero padding counted,
  // divisor kernel_size), window kernel_size, stride, padding <= kernel_size / 2 each side,
  // floor output length, as F.max_pool1d / F.avg_pool1d. Runs in x's dtype (no autocast rule,
  // as torch's pooling).
  m.def(
      "act_pool1d(Tensor x, str act, str pool, int kernel_size, int stride, int padding, "
      "float alpha=0.01) -> Tensor");
  // grad_x: each window's gradient routed to its argmax (max, recomputed from x) or spread
  // over it (avg), times act'(x).
  m.def(
      "act_pool1d_backward(Tensor grad, Tensor x, str act, str pool, int kernel_size, "
      "int stride, int padding, float alpha) -> Tensor");
  // ---- end act_pool1d ----

  // ---- bn_act_pool1d (csrc/bn_act_pool.cpp) ----
  // act_pool1d(batch_norm(x)) for x (N, C, L): batch statistics when training (biased
  // variance), the running ones otherwise; weight/bias per channel (absent: 1 and 0).
  // Functional: returns (out, mean, var), the statistics it normalised with (float32 for half
  // types), and leaves the running statistics to the caller.
  m.def(
      "bn_act_pool1d(Tensor x, Tensor? weight, Tensor? bias, Tensor? running_mean, "
      "Tensor? running_var, bool training, float eps, str act, str pool, int kernel_size, "
      "int stride, int padding, float alpha=0.01) -> (Tensor, Tensor, Tensor)");
  // -> (grad_x, grad_weight, grad_bias), each empty where output_mask says so.
  m.def(
      "bn_act_pool1d_backward(Tensor grad, Tensor x, Tensor? weight, Tensor? bias, Tensor mean, "
      "Tensor var, bool training, float eps, str act, str pool, int kernel_size, int stride, "
      "int padding, float alpha, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
  // ---- end bn_act_pool1d ----

  // ---- LSTM / GRU layers (csrc/lstm.cpp, csrc/gru.cpp) -----------------------------------
  // One layer over x (T, B, I) from h0 (B, H) [, c0 (B, H)], gate orders as torch.nn (LSTM
  // i, f, g, o; GRU r, z, n). lengths: CPU int64 (B,); steps t >= lengths[b] keep row b's state
  // and output 0. Besides (y, h_T[, c_T]) the forward returns what its backward needs: the
  // gate activations of every step (LSTM (T, B, 4H); GRU (T, B, 4H) = r, z, n and the
  // recurrent n pre-activation) and the LSTM cell states (T, B, H), in float32 for half types;
  // with save=False (inference) these two are empty and never written to memory.
  m.def(
      "lstm(Tensor x, Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
      "Tensor? b_hh, Tensor? lengths=None, bool save=True) -> "
      "(Tensor, Tensor, Tensor, Tensor, Tensor)");
  // -> (grad_x, grad_h0, grad_c0, grad_w_ih, grad_w_hh, grad_bias); grad_bias is the gradient
  // of b_ih and of b_hh alike. With x_grad=False, grad_x is empty (0,) and not computed: a
  // network's input needs none, and dx = dG W_ih is a GEMM over all steps.
  m.def(
      "lstm_backward(Tensor? grad_y, Tensor? grad_h, Tensor? grad_c, Tensor x, Tensor h0, "
      "Tensor c0, Tensor w_ih, Tensor w_hh, Tensor y, Tensor gates, Tensor cs, "
      "Tensor? lengths=None, bool x_grad=True) -> "
      "(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "gru(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, "
      "Tensor? lengths=None, bool save=True) -> (Tensor, Tensor, Tensor)");
  // -> (grad_x, grad_h0, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh); x_grad as for the LSTM.
  m.def(
      "gru_backward(Tensor? grad_y, Tensor? grad_h, Tensor x, Tensor h0, Tensor w_ih, "
      "Tensor w_hh, Tensor y, Tensor saved, Tensor? lengths=None, bool x_grad=True) -> "
      "(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  // ---- end LSTM / GRU ------------------------------------------------------------------------
}

// Device-generic code, registered per device (not as a composite, so the fake kernel from
// Python is the only Meta kernel): the GEMM goes to the vendor library of x's device (oneDNN /
// MKL / OpenBLAS on CPU, cuBLAS on CUDA), the epilogue to our bias_act kernel.
TORCH_LIBRARY_IMPL(lightdl, CPU, m) { m.impl("fused_linear", &lightdl::fused_linear); }
TORCH_LIBRARY_IMPL(lightdl, CUDA, m) { m.impl("fused_linear", &lightdl::fused_linear); }

TORCH_LIBRARY_IMPL(lightdl, AutocastCPU, m) {
  m.impl("bias_act", &lightdl::bias_act_autocast<c10::DeviceType::CPU>);
  m.impl("fused_linear", &lightdl::fused_linear_autocast<c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(lightdl, AutocastCUDA, m) {
  m.impl("bias_act", &lightdl::bias_act_autocast<c10::DeviceType::CUDA>);
  m.impl("fused_linear", &lightdl::fused_linear_autocast<c10::DeviceType::CUDA>);
}

namespace lightdl {
// Defined in csrc/cpu/isa.cpp: the best instruction set this CPU runs our kernels with.
const char* cpu_isa();
bool mkl_matches_isa();
namespace cpu {
bool step_gemm_available();  // csrc/cpu/rnn.cpp
bool lstm_step_available();  // csrc/cpu/rnn.cpp
double fma_peak_run(int64_t iters, double* sink);  // csrc/cpu/fma_peak.cpp
}
}  // namespace lightdl

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "lightdl compiled kernels; ops are in torch.ops.lightdl";
#ifdef LIGHTDL_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
  m.attr("compiler") = __VERSION__;
  m.def("cpu_isa", &lightdl::cpu_isa, "instruction set the CPU kernels dispatch to");
  m.def("mkl_matches_isa", &lightdl::mkl_matches_isa,
        "whether MKL's SGEMM runs kernels as wide as cpu_isa (not on AMD CPUs with AVX-512)");
  m.def(
      "rnn_cpu_gemm",
      [] { return lightdl::cpu::step_gemm_available() ? "lightdl" : "mkl"; },
      "which GEMM the CPU LSTM/GRU layers run per step and for the weight gradients in float32 "
      "(csrc/cpu/step_gemm.h)");
  m.def(
      "lstm_cpu_step",
      [] { return lightdl::cpu::lstm_step_available() ? "fused" : "gemm+pointwise"; },
      "how the CPU LSTM forward runs a step in float32: one kernel, the step GEMM with the gate "
      "math as its epilogue (csrc/cpu/lstm_step.h), or the GEMM and a pointwise kernel");
  m.def(
      "cpu_fma_peak_run",
      [](int64_t iters) {
        double sink = 0.0;
        const double flop = lightdl::cpu::fma_peak_run(iters, &sink);
        return std::make_pair(flop, sink);
      },
      "runs `iters` iterations of a register-only multiply-add loop (cpu_isa's vectors) on every "
      "thread; returns (floating-point operations done, a value the loop computed). Time the "
      "call for the CPU's peak rate (lightdl/bench/limits.py)");
}

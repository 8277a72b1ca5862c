// The four bias/activation ops as the dispatcher sees them, once for every device: argument
// checks, activation parsing and the registration. A device supplies only its kernels:
//
//   struct Impl {
//     // bias undefined: no bias. Returns act(x + bias) in x's dtype.
//     static at::Tensor forward(const at::Tensor& x, const at::Tensor& bias, Act act,
//                               double alpha);
//     // Returns (grad_x, grad_bias); grad_bias undefined when bias is. `act` may be a
//     // *FromOutput variant, in which case x is the forward output.
//     static std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& grad,
//                                                        const at::Tensor& x,
//                                                        const at::Tensor& bias, Act act,
//                                                        double alpha);
//   };
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <string>
#include <tuple>

#include "checks.h"

namespace lightdl {

template <typename Impl>
struct BiasActOps {
  static Act backward_act(c10::string_view act, double alpha, bool x_is_output, const char* op) {
    const Act a = parse_act(std::string(act));
    return x_is_output ? from_output(a, alpha, op) : a;
  }

  static at::Tensor activation(const at::Tensor& x, c10::string_view act, double alpha) {
    check_float_tensor(x, "activation", "x");
    return Impl::forward(x, at::Tensor(), parse_act(std::string(act)), alpha);
  }

  static at::Tensor activation_backward(const at::Tensor& grad, const at::Tensor& x,
                                        c10::string_view act, double alpha, bool x_is_output) {
    const char* op = "activation_backward";
    check_float_tensor(x, op, "x");
    check_same(grad, x, op, "grad", "x");
    return std::get<0>(
        Impl::backward(grad, x, at::Tensor(), backward_act(act, alpha, x_is_output, op), alpha));
  }

  static at::Tensor bias_act(const at::Tensor& x, const at::Tensor& bias, c10::string_view act,
                             double alpha) {
    check_bias(x, bias, "bias_act");
    return Impl::forward(x, bias, parse_act(std::string(act)), alpha);
  }

  static std::tuple<at::Tensor, at::Tensor> bias_act_backward(const at::Tensor& grad,
                                                              const at::Tensor& x,
                                                              const at::Tensor& bias,
                                                              c10::string_view act, double alpha,
                                                              bool x_is_output) {
    const char* op = "bias_act_backward";
    check_bias(x, bias, op);
    check_same(grad, x, op, "grad", "x");
    return Impl::backward(grad, x, bias, backward_act(act, alpha, x_is_output, op), alpha);
  }

  static void register_kernels(torch::Library& m) {
    m.impl("activation", &activation);
    m.impl("activation_backward", &activation_backward);
    m.impl("bias_act", &bias_act);
    m.impl("bias_act_backward", &bias_act_backward);
  }
};

}  // namespace lightdl

// Argument checks shared by the CPU and CUDA entry points. The Python wrappers in lightdl/ops
// check the same things first with friendlier exceptions; these keep direct torch.ops.lightdl
// calls from ever reaching a kernel with inputs it cannot handle.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <string>

#include "activations.h"

namespace lightdl {

inline Act parse_act(const std::string& name) {
  if (name == "identity") return Act::Identity;
  if (name == "relu") return Act::ReLU;
  if (name == "leaky_relu") return Act::LeakyReLU;
  if (name == "sigmoid") return Act::Sigmoid;
  if (name == "tanh") return Act::Tanh;
  if (name == "gelu") return Act::GELU;
  if (name == "gelu_tanh") return Act::GELUTanh;
  if (name == "silu") return Act::SiLU;
  if (name == "step") return Act::Step;
  if (name == "sign") return Act::Sign;
  TORCH_CHECK_VALUE(false, "lightdl: unknown activation act='", name,
                    "'; expected one of identity, relu, leaky_relu, sigmoid, tanh, gelu, "
                    "gelu_tanh, silu, step, sign");
  return Act::Identity;  // unreachable
}

// The backward variant that takes the forward output instead of the input (see
// Act::SigmoidFromOutput): sigmoid, tanh, relu, and leaky_relu with a slope >= 0 (with a
// negative slope the output's sign no longer tells which side of 0 the input was on).
inline Act from_output(Act a, double alpha, const char* op) {
  if (a == Act::Sigmoid) return Act::SigmoidFromOutput;
  if (a == Act::Tanh) return Act::TanhFromOutput;
  if (a == Act::ReLU) return Act::ReLUFromOutput;
  if (a == Act::LeakyReLU) {
    TORCH_CHECK_VALUE(alpha >= 0, op, ": x_is_output=True needs alpha >= 0 for act='leaky_relu', "
                      "got alpha=", alpha);
    return Act::LeakyReLUFromOutput;
  }
  TORCH_CHECK_VALUE(false, op, ": x_is_output=True is only supported for act='sigmoid', 'tanh', "
                    "'relu' and 'leaky_relu'");
  return a;  // unreachable
}

inline void check_float_tensor(const at::Tensor& t, const char* op, const char* arg) {
  TORCH_CHECK_TYPE(at::isFloatingType(t.scalar_type()), op, ": `", arg,
                   "` must be float32, float64, float16 or bfloat16, got ", t.scalar_type());
}

// bias_act contract: bias has shape (x.shape[1],), same dtype and device as x.
inline void check_bias(const at::Tensor& x, const at::Tensor& bias, const char* op) {
  check_float_tensor(x, op, "x");
  TORCH_CHECK_VALUE(x.dim() >= 2, op, ": `x` must have at least 2 dims (batch, channels, ...), got ",
                    x.dim(), "-D tensor of shape ", x.sizes());
  TORCH_CHECK_VALUE(bias.dim() == 1 && bias.size(0) == x.size(1), op, ": `bias` must have shape (",
                    x.size(1), ",) to match x.shape[1], got ", bias.sizes());
  TORCH_CHECK_TYPE(bias.scalar_type() == x.scalar_type(), op, ": `bias` dtype ",
                   bias.scalar_type(), " differs from `x` dtype ", x.scalar_type());
  TORCH_CHECK_VALUE(bias.device() == x.device(), op, ": `bias` is on ", bias.device(),
                    " but `x` is on ", x.device());
}

inline void check_same(const at::Tensor& a, const at::Tensor& b, const char* op, const char* an,
                       const char* bn) {
  TORCH_CHECK_VALUE(a.sizes() == b.sizes(), op, ": `", an, "` shape ", a.sizes(), " differs from `",
                    bn, "` shape ", b.sizes());
  TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type(), op, ": `", an, "` dtype ", a.scalar_type(),
                   " differs from `", bn, "` dtype ", b.scalar_type());
  TORCH_CHECK_VALUE(a.device() == b.device(), op, ": `", an, "` is on ", a.device(), " but `", bn,
                    "` is on ", b.device());
}

}  // namespace lightdl

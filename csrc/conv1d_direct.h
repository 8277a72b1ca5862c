// The direct-convolution kernels of each device, as the device-generic fused_conv1d op
// (csrc/conv1d.cpp) calls them. groups == 1 only. Inputs may have any floating dtype; half
// types are computed in float and the results rounded once.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <tuple>

#include "activations.h"

namespace lightdl {

struct Conv1dArgs {
  int64_t stride, padding, dilation;
};

#define LIGHTDL_DECLARE_CONV1D_DIRECT                                                          \
  /* act(conv(x, w) + b), (N, O, Lo); b may be undefined. */                                   \
  at::Tensor conv1d_direct_forward(const at::Tensor& x, const at::Tensor& w,                   \
                                   const at::Tensor& b, Conv1dArgs a, Act act, double alpha);  \
  /* (grad_x, grad_w, grad_b) from grad = grad of the forward's output, act' applied to the   \
     recomputed pre-activation, or taken from `saved` = the forward's output where act has a  \
     *FromOutput variant (undefined: recompute; the CUDA kernel always recomputes); each      \
     undefined unless asked for in mask (grad_b also when b is undefined). */                  \
  std::tuple<at::Tensor, at::Tensor, at::Tensor> conv1d_direct_backward(                       \
      const at::Tensor& grad, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,   \
      const at::Tensor& saved, Conv1dArgs a, Act act, double alpha, std::array<bool, 3> mask);

namespace cpu {
LIGHTDL_DECLARE_CONV1D_DIRECT
}  // namespace cpu

#ifdef LIGHTDL_WITH_CUDA
namespace cuda {
LIGHTDL_DECLARE_CONV1D_DIRECT
}  // namespace cuda
#endif

#undef LIGHTDL_DECLARE_CONV1D_DIRECT

}  // namespace lightdl

// The direct-convolution kernels of each device, as the device-generic fused_conv1d op
// (csrc/conv1d.cpp) calls them. groups == 1 only. Inputs may have any floating dtype; half
// types are computed in float and the results rounded once.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "activations.h"

namespace lightdl {

struct Conv1dArgs {
  int64_t stride, padding, dilation;
};

#define LIGHTDL_DECLARE_CONV1D_DIRECT                                                          \
  /* (act(conv(x, w) + b), conv(x, w) if want_pre else undefined); b may be undefined. */      \
  std::tuple<at::Tensor, at::Tensor> conv1d_direct_forward(                                    \
      const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, Conv1dArgs a, Act act,    \
      double alpha, bool want_pre);                                                            \
  /* grad of x (N, C, L) from gz = grad of conv(x, w), (N, O, Lo). */                          \
  at::Tensor conv1d_direct_grad_input(const at::Tensor& gz, const at::Tensor& w, int64_t L,    \
                                      Conv1dArgs a);                                           \
  /* (grad of w, sum of gz over (N, Lo) if want_bias else undefined). */                       \
  std::tuple<at::Tensor, at::Tensor> conv1d_direct_grad_weight(                                \
      const at::Tensor& gz, const at::Tensor& x, int64_t K, Conv1dArgs a, bool want_bias);

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

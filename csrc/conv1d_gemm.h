// The CPU GEMM path of fused_conv1d (csrc/cpu/conv1d_gemm.cpp): im2col + one at::mm (MKL)
// per product, for short series with many channels, where oneDNN's convolution does not reach
// its GEMM rate and its backward does not scale past one thread (see the dispatch rule in
// csrc/conv1d.cpp). float32 / float64, groups == 1. Same contract as the vendor calls it
// replaces: the forward returns the biased pre-activation, the backward takes the gradient of
// the pre-activation (act' already applied).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <tuple>

#include "conv1d_direct.h"

namespace lightdl::cpu {

// conv(x, w) + b, (N, O, Lo), like at::convolution; b may be undefined.
at::Tensor conv1d_gemm_forward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                               Conv1dArgs a);

// (grad_x, grad_w, grad_b) from gz = gradient of the pre-activation (N, O, Lo), like
// at::convolution_backward; each undefined unless asked for in mask.
std::tuple<at::Tensor, at::Tensor, at::Tensor> conv1d_gemm_backward(const at::Tensor& gz,
                                                                    const at::Tensor& x,
                                                                    const at::Tensor& w,
                                                                    Conv1dArgs a,
                                                                    std::array<bool, 3> mask);

}  // namespace lightdl::cpu

// Argument checks and the parsed arguments of lightdl::act_pool1d(_backward), shared by the CPU
// and CUDA entry points (the Python wrapper checks the same things first, with friendlier
// messages, and reshapes unbatched input).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <string>
#include <type_traits>

#include "checks.h"
#include "pool_math.h"

namespace lightdl {

inline Pool parse_pool(const std::string& name) {
  if (name == "max") return Pool::Max;
  if (name == "avg") return Pool::Avg;
  TORCH_CHECK_VALUE(false, "act_pool1d: `pool` must be 'max' or 'avg', got '", name, "'");
  return Pool::Max;  // unreachable
}

// Runs f(std::integral_constant<Pool, P>) with P = pool: the kernels take it as a template
// argument, like the activation (LIGHTDL_DISPATCH_ACT).
template <typename F>
void dispatch_pool(Pool pool, F&& f) {
  if (pool == Pool::Max) {
    f(std::integral_constant<Pool, Pool::Max>{});
  } else {
    f(std::integral_constant<Pool, Pool::Avg>{});
  }
}

// Checks x (N, C, L) and the window; returns the geometry.
inline Pool1dGeom act_pool1d_geom(const at::Tensor& x, int64_t kernel_size, int64_t stride,
                                  int64_t padding) {
  const char* op = "act_pool1d";
  check_float_tensor(x, op, "x");
  TORCH_CHECK_VALUE(x.dim() == 3, op, ": `x` must have shape (N, C, L), got ", x.sizes());
  TORCH_CHECK_VALUE(kernel_size >= 1, op, ": `kernel_size` must be >= 1, got ", kernel_size);
  TORCH_CHECK_VALUE(stride >= 1, op, ": `stride` must be >= 1, got ", stride);
  TORCH_CHECK_VALUE(padding >= 0 && 2 * padding <= kernel_size, op,
                    ": `padding` must be between 0 and kernel_size / 2, got ", padding,
                    " for kernel_size ", kernel_size);
  TORCH_CHECK_VALUE(x.size(2) + 2 * padding >= kernel_size, op, ": input too short: length ",
                    x.size(2), " with padding ", padding, " is shorter than kernel_size ",
                    kernel_size);
  const int64_t L = x.size(2);
  return Pool1dGeom{x.size(0) * x.size(1), L, pool1d_out_len(L, kernel_size, stride, padding),
                    kernel_size, stride, padding};
}

inline void check_act_pool1d_grad(const at::Tensor& grad, const at::Tensor& x,
                                  const Pool1dGeom& g) {
  const char* op = "act_pool1d_backward";
  TORCH_CHECK_VALUE(grad.dim() == 3 && grad.size(0) == x.size(0) && grad.size(1) == x.size(1) &&
                        grad.size(2) == g.Lo,
                    op, ": `grad` must have shape (", x.size(0), ", ", x.size(1), ", ", g.Lo,
                    "), got ", grad.sizes());
  TORCH_CHECK_TYPE(grad.scalar_type() == x.scalar_type(), op, ": `grad` dtype ",
                   grad.scalar_type(), " differs from `x` dtype ", x.scalar_type());
  TORCH_CHECK_VALUE(grad.device() == x.device(), op, ": `grad` is on ", grad.device(),
                    " but `x` is on ", x.device());
}

}  // namespace lightdl

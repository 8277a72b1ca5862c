// CUDA kernels of lightdl::act_pool1d, the GPU half of csrc/cpu/act_pool.cpp (same semantics,
// same window math: csrc/pool_math.h).
//
// Forward: one thread per output element. Backward: one thread per input element, which
// gathers from the (few) windows that read it, recomputing a max window's argmax, so that no
// two threads write the same element: no atomics, identical results run to run. Half types
// compute in float.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <string>

#include "act_pool_args.h"
#include "activations.h"
#include "grid.h"
#include "pool_math.h"

namespace lightdl {
namespace cuda {
namespace {

template <Act A, Pool PK, typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    fwd_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y, Pool1dGeom g,
               at::opmath_type<scalar_t> alpha) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t total = g.R * g.Lo;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / g.Lo, o = e - r * g.Lo;
    const scalar_t* xr = x + r * g.L;
    int64_t j0, j1, arg;
    pool1d_window(g, o, j0, j1);
    const acc_t v = PK == Pool::Max ? pool1d_window_max<A, acc_t>(xr, j0, j1, alpha, arg)
                                    : pool1d_window_avg<A, acc_t>(xr, j0, j1, g.K, alpha);
    y[e] = static_cast<scalar_t>(v);
  }
}

template <Act A, Pool PK, typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    bwd_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ x,
               scalar_t* __restrict__ gx, Pool1dGeom g, at::opmath_type<scalar_t> alpha) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t total = g.R * g.L;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / g.L, i = e - r * g.L;
    const scalar_t* xr = x + r * g.L;
    const scalar_t* gr = grad + r * g.Lo;
    int64_t o0, o1;
    pool1d_windows_of(g, i, o0, o1);
    acc_t s = acc_t(0);
    for (int64_t o = o0; o < o1; ++o) {
      if constexpr (PK == Pool::Max) {
        int64_t j0, j1, arg;
        pool1d_window(g, o, j0, j1);
        pool1d_window_max<A, acc_t>(xr, j0, j1, alpha, arg);
        if (arg == i) s += static_cast<acc_t>(gr[o]);
      } else {
        s += static_cast<acc_t>(gr[o]);
      }
    }
    if (PK == Pool::Avg) s /= static_cast<acc_t>(g.K);
    gx[e] = static_cast<scalar_t>(s * ActMath<A>::grad(static_cast<acc_t>(xr[i]), alpha));
  }
}

at::Tensor act_pool1d(const at::Tensor& x_in, c10::string_view act, c10::string_view pool,
                      int64_t kernel_size, int64_t stride, int64_t padding, double alpha) {
  const Pool1dGeom g = act_pool1d_geom(x_in, kernel_size, stride, padding);
  const Act a = parse_act(std::string(act));
  const Pool pk = parse_pool(std::string(pool));
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  at::Tensor y = at::empty({x.size(0), x.size(1), g.Lo}, x.options());
  if (y.numel() == 0) return y;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "act_pool1d_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    LIGHTDL_DISPATCH_ACT(a, [&] {
      dispatch_pool(pk, [&](auto p) {
        fwd_kernel<ACT, decltype(p)::value, scalar_t><<<blocks_for(y.numel()), kThreads, 0, stream>>>(
            x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), g,
            static_cast<acc_t>(alpha));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  });
  return y;
}

at::Tensor act_pool1d_backward(const at::Tensor& grad_in, const at::Tensor& x_in,
                               c10::string_view act, c10::string_view pool, int64_t kernel_size,
                               int64_t stride, int64_t padding, double alpha) {
  const Pool1dGeom g = act_pool1d_geom(x_in, kernel_size, stride, padding);
  check_act_pool1d_grad(grad_in, x_in, g);
  const Act a = parse_act(std::string(act));
  const Pool pk = parse_pool(std::string(pool));
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), grad = grad_in.contiguous();
  at::Tensor gx = at::empty(x.sizes(), x.options());
  if (gx.numel() == 0) return gx;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "act_pool1d_bwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    LIGHTDL_DISPATCH_ACT(a, [&] {
      dispatch_pool(pk, [&](auto p) {
        bwd_kernel<ACT, decltype(p)::value, scalar_t><<<blocks_for(gx.numel()), kThreads, 0, stream>>>(
            grad.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(),
            gx.mutable_data_ptr<scalar_t>(), g, static_cast<acc_t>(alpha));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  });
  return gx;
}

}  // namespace
}  // namespace cuda
}  // namespace lightdl

TORCH_LIBRARY_IMPL(lightdl, CUDA, m) {
  m.impl("act_pool1d", &lightdl::cuda::act_pool1d);
  m.impl("act_pool1d_backward", &lightdl::cuda::act_pool1d_backward);
}

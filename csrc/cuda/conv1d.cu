// CUDA direct 1-D convolution (groups == 1), the GPU half of the direct path of
// csrc/conv1d.cpp: the forward with bias and activation in registers, and the backward that
// recomputes the pre-activation, applies act' once (into a float workspace gz), then reduces
// grad_weight and grad_bias and gathers grad_input from it.
//
// Simple, one-thread-per-output kernels for the small channel counts this path runs at (the
// vendor path, cuDNN, takes the rest); half types accumulate in float. The reductions of
// grad_weight / grad_bias are one block per weight (or bias) element, a fixed-order strided
// sum per thread then a fixed shared-memory tree: no atomics, identical results run to run.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <array>
#include <cstdint>
#include <tuple>

#include "activations.h"
#include "conv1d_direct.h"
#include "conv1d_math.h"
#include "grid.h"

namespace lightdl {
namespace cuda {
namespace {

// z = sum_{c,k} w[o, c, k] x[n, c, l s - p + k d], x unpadded (zeros outside [0, L)).
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ acc_t conv_at(const scalar_t* __restrict__ x,
                                         const scalar_t* __restrict__ w, const Conv1dGeom& g,
                                         int64_t n, int64_t o, int64_t l) {
  acc_t z = acc_t(0);
  const scalar_t* xn = x + n * g.C * g.L;
  const scalar_t* wo = w + o * g.C * g.K;
  const int64_t base = l * g.S - g.P;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t k = 0; k < g.K; ++k) {
      const int64_t i = base + k * g.D;
      if (i >= 0 && i < g.L)
        z += static_cast<acc_t>(wo[c * g.K + k]) * static_cast<acc_t>(xn[c * g.L + i]);
    }
  return z;
}

template <Act A, typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    fwd_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ w,
               const scalar_t* __restrict__ b, scalar_t* __restrict__ out, Conv1dGeom g,
               at::opmath_type<scalar_t> alpha) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t total = g.N * g.O * g.Lo;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t l = t % g.Lo, o = (t / g.Lo) % g.O, n = t / (g.Lo * g.O);
    const acc_t z = conv_at<scalar_t, acc_t>(x, w, g, n, o, l);
    const acc_t bb = b != nullptr ? static_cast<acc_t>(b[o]) : acc_t(0);
    out[t] = static_cast<scalar_t>(ActMath<A>::fwd(z + bb, alpha));
  }
}

// gz = grad * act'(z + b), z recomputed; identity: gz = grad.
template <Act A, typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    gz_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ x,
              const scalar_t* __restrict__ w, const scalar_t* __restrict__ b,
              at::opmath_type<scalar_t>* __restrict__ gz, Conv1dGeom g,
              at::opmath_type<scalar_t> alpha) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t total = g.N * g.O * g.Lo;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const acc_t gr = static_cast<acc_t>(grad[t]);
    if (A == Act::Identity) {
      gz[t] = gr;
      continue;
    }
    const int64_t l = t % g.Lo, o = (t / g.Lo) % g.O, n = t / (g.Lo * g.O);
    const acc_t z = conv_at<scalar_t, acc_t>(x, w, g, n, o, l);
    const acc_t bb = b != nullptr ? static_cast<acc_t>(b[o]) : acc_t(0);
    gz[t] = gr * ActMath<A>::grad(z + bb, alpha);
  }
}

// gx[n, c, i] = sum_{o, k : (i + p - k d) = l s, 0 <= l < Lo} w[o, c, k] gz[n, o, l].
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    grad_input_kernel(const at::opmath_type<scalar_t>* __restrict__ gz,
                      const scalar_t* __restrict__ w, scalar_t* __restrict__ gx, Conv1dGeom g) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t total = g.N * g.C * g.L;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t % g.L, c = (t / g.L) % g.C, n = t / (g.L * g.C);
    acc_t s = acc_t(0);
    for (int64_t k = 0; k < g.K; ++k) {
      const int64_t q = i + g.P - k * g.D;
      if (q < 0 || q % g.S != 0) continue;
      const int64_t l = q / g.S;
      if (l >= g.Lo) continue;
      for (int64_t o = 0; o < g.O; ++o)
        s += static_cast<acc_t>(w[(o * g.C + c) * g.K + k]) * gz[(n * g.O + o) * g.Lo + l];
    }
    gx[t] = static_cast<scalar_t>(s);
  }
}

// One block per weight element (o, c, k), plus O more blocks for grad_bias (c == C): a
// fixed-order strided sum per thread over (n, l), then a shared-memory tree.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    grad_weight_kernel(const at::opmath_type<scalar_t>* __restrict__ gz,
                       const scalar_t* __restrict__ x, scalar_t* __restrict__ gw,
                       scalar_t* __restrict__ gb, Conv1dGeom g, int64_t first) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ acc_t partial[kThreads];
  const int64_t e = first + blockIdx.x;  // element index: O*C*K weights, then O biases
  const int64_t CK = g.C * g.K;
  const bool bias = e >= g.O * CK;
  const int64_t o = bias ? e - g.O * CK : e / CK;
  const int64_t c = bias ? 0 : (e % CK) / g.K, k = bias ? 0 : e % g.K;
  acc_t s = acc_t(0);
  const int64_t total = g.N * g.Lo;
  for (int64_t t = threadIdx.x; t < total; t += blockDim.x) {
    const int64_t n = t / g.Lo, l = t % g.Lo;
    const acc_t gv = gz[(n * g.O + o) * g.Lo + l];
    if (bias) {
      s += gv;
    } else {
      const int64_t i = l * g.S - g.P + k * g.D;
      if (i >= 0 && i < g.L) s += gv * static_cast<acc_t>(x[(n * g.C + c) * g.L + i]);
    }
  }
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int h = blockDim.x / 2; h > 0; h >>= 1) {
    if (threadIdx.x < h) partial[threadIdx.x] += partial[threadIdx.x + h];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    if (bias) gb[o] = static_cast<scalar_t>(partial[0]);
    else gw[e] = static_cast<scalar_t>(partial[0]);
  }
}

Conv1dGeom geom_of(const at::Tensor& x, const at::Tensor& w, Conv1dArgs a) {
  return conv1d_geom(x.size(0), x.size(1), w.size(0), w.size(2), x.size(2), a.stride, a.padding,
                     a.dilation);
}

}  // namespace

at::Tensor conv1d_direct_forward(const at::Tensor& x_in, const at::Tensor& w_in,
                                 const at::Tensor& b_in, Conv1dArgs a, Act act, double alpha) {
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), w = w_in.contiguous();
  const at::Tensor b = b_in.defined() ? b_in.contiguous() : at::Tensor();
  const Conv1dGeom g = geom_of(x, w, a);
  at::Tensor out = at::empty({g.N, g.O, g.Lo}, x.options());
  if (out.numel() == 0) return out;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "conv1d_fwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    LIGHTDL_DISPATCH_ACT(act, [&] {
      fwd_kernel<ACT, scalar_t><<<blocks_for(out.numel()), kThreads, 0, stream>>>(
          x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
          b.defined() ? b.const_data_ptr<scalar_t>() : nullptr, out.mutable_data_ptr<scalar_t>(),
          g, static_cast<acc_t>(alpha));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv1d_direct_backward(
    const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& w_in,
    const at::Tensor& b_in, const at::Tensor& /*saved: unused, the kernel recomputes*/,
    Conv1dArgs a, Act act, double alpha, std::array<bool, 3> mask) {
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor grad = grad_in.contiguous(), x = x_in.contiguous(), w = w_in.contiguous();
  const at::Tensor b = b_in.defined() ? b_in.contiguous() : at::Tensor();
  const Conv1dGeom g = geom_of(x, w, a);
  const bool want_b = mask[2] && b.defined();
  at::Tensor gx = mask[0] ? at::empty({g.N, g.C, g.L}, x.options()) : at::Tensor();
  at::Tensor gw = mask[1] ? at::empty({g.O, g.C, g.K}, x.options()) : at::Tensor();
  at::Tensor gb = want_b ? at::empty({g.O}, x.options()) : at::Tensor();
  const auto acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor gz = at::empty({g.N, g.O, g.Lo}, x.options().dtype(acc_type));
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "conv1d_bwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    acc_t* gzp = gz.mutable_data_ptr<acc_t>();
    if (gz.numel() > 0) {
      LIGHTDL_DISPATCH_ACT(act, [&] {
        gz_kernel<ACT, scalar_t><<<blocks_for(gz.numel()), kThreads, 0, stream>>>(
            grad.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(),
            w.const_data_ptr<scalar_t>(), b.defined() ? b.const_data_ptr<scalar_t>() : nullptr,
            gzp, g, static_cast<acc_t>(alpha));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    }
    if (mask[0] && gx.numel() > 0) {
      grad_input_kernel<scalar_t><<<blocks_for(gx.numel()), kThreads, 0, stream>>>(
          gzp, w.const_data_ptr<scalar_t>(), gx.mutable_data_ptr<scalar_t>(), g);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    // Weights [0, O*C*K) when asked for, then biases [O*C*K, O*C*K + O) when asked for.
    const int64_t first = mask[1] ? 0 : g.O * g.C * g.K;
    const int64_t last = g.O * g.C * g.K + (want_b ? g.O : 0);
    for (int64_t e0 = first; e0 < last; e0 += 65535) {
      const int64_t blocks = last - e0 < 65535 ? last - e0 : 65535;
      grad_weight_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(
          gzp, x.const_data_ptr<scalar_t>(),
          mask[1] ? gw.mutable_data_ptr<scalar_t>() : nullptr,
          want_b ? gb.mutable_data_ptr<scalar_t>() : nullptr, g, e0);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return {gx, gw, gb};
}

}  // namespace cuda
}  // namespace lightdl

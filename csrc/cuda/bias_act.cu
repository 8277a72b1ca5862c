// CUDA kernels of lightdl::activation and lightdl::bias_act, forward and backward; the math
// is shared with the CPU kernels (csrc/activations.h), the semantics mirror
// csrc/cpu/bias_act.cpp.
//
// Layout: x is made contiguous and seen as (N, C, S), S = prod(shape[2:]). Two kernel
// families cover every case without any per-element index division:
//
// - "plane" kernels, for S > 1 (conv outputs: one scalar bias per (n, c) plane) and for
//   everything without a bias or with C == 1 (seen as one plane of numel elements). A block
//   is (TX, TY) = 256 threads: TY planes side by side, TX threads along each plane (TX a power
//   of two sized to the plane). A long plane is cut into K chunks (gridDim.y) so that few
//   planes still fill the GPU; planes are walked with a grid-stride loop (gridDim.x).
// - "column" kernels, for S == 1 (linear outputs (N, C): bias per column). A block is
//   (TX <= 32 column vectors) x (TY rows); every thread keeps its columns (and their bias)
//   for the whole row loop.
//
// Loads and stores are 16 bytes (a Pack of 16 / sizeof(T) elements) when every pointer is
// 16-byte aligned and the plane length (plane kernels with more than one plane) or C (column
// kernels) is a multiple of the pack; otherwise the kernels run scalar, with U = 16 / sizeof(T)
// independent elements per loop iteration so that as many bytes are in flight.
//
// bias_act_backward writes grad_x and reduces grad_bias in the same pass over memory: every
// block sums its share of grad_x (the unrounded float/double values, as the CPU kernels do)
// with warp shuffles (plane kernels) or a shared-memory tree over rows (column kernels) and
// writes one partial per (plane, chunk) or per (row-block, column) into a float (double for
// double) workspace; a second small kernel sums each channel's partials in a fixed order.
// No atomics: results are identical run to run (the split depends only on the shapes and on
// the GPU's SM count).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <tuple>

#include "activations.h"
#include "bias_act_ops.h"
#include "checks.h"

namespace lightdl {
namespace cuda {
namespace {

constexpr int kThreads = 256;        // threads per block, every kernel
constexpr int kBlocksPerSM = 8;      // 8 x 256 = 2048 threads: one full wave on sm_80/sm_90
constexpr int64_t kMaxGridY = 65535;

template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <typename scalar_t>
constexpr int kPack = 16 / static_cast<int>(sizeof(scalar_t));

__host__ __device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__host__ __device__ __forceinline__ int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int next_pow2(int64_t n, int cap) {
  int p = 1;
  while (p < n && p < cap) p <<= 1;
  return p;
}

// plane % C, in 32 bits when it fits (64-bit division is a long emulated sequence).
__device__ __forceinline__ int64_t channel_of(int64_t plane, int64_t C) {
  if ((static_cast<uint64_t>(plane) | static_cast<uint64_t>(C)) <= 0xffffffffull)
    return static_cast<uint32_t>(plane) % static_cast<uint32_t>(C);
  return plane % C;
}

int sm_count(int device) {
  static std::atomic<int> cache[64];  // static storage: zero-initialised
  int n = 0;
  if (device >= 0 && device < 64) n = cache[device].load(std::memory_order_relaxed);
  if (n == 0) {
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    if (device >= 0 && device < 64) cache[device].store(n, std::memory_order_relaxed);
  }
  return n > 0 ? n : 1;
}

bool aligned16(const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// ------------------------------------------------------------------------------------------
// Plane kernels.

struct PlaneGeom {
  int64_t P;      // planes
  int64_t C;      // bias index of plane p is p % C
  int64_t Sv;     // packs per plane
  int64_t chunk;  // packs per block along a plane (K = gridDim.y chunks)
  int64_t K;
  int64_t tail;   // P == 1 only: elements after the Sv packs (< pack size), done by one thread
};

// Sums s over the TX threads of a plane group (all threads of the block must call this).
// warp_sums: kThreads / 32 slots of shared memory. The result is valid in threadIdx.x == 0.
template <typename T>
__device__ __forceinline__ T group_sum(T s, T* warp_sums) {
  const int TX = blockDim.x;
  const int width = TX < 32 ? TX : 32;
  for (int o = width / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (TX > 32) {  // uniform over the block
    const int lin = threadIdx.y * TX + threadIdx.x;
    if ((lin & 31) == 0) warp_sums[lin >> 5] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
      T t = T(0);
      const int warps = TX / 32;
      for (int w = 0; w < warps; ++w) t += warp_sums[threadIdx.y * warps + w];
      s = t;
    }
    __syncthreads();
  }
  return s;
}

// y = act(x + bias[p % C]) for plane p; bias may be null.
template <Act A, typename scalar_t, int VEC, int U>
__global__ void __launch_bounds__(kThreads)
    plane_fwd_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ bias,
                     scalar_t* __restrict__ y, PlaneGeom g, at::opmath_type<scalar_t> alpha) {
  using acc_t = at::opmath_type<scalar_t>;
  using pack_t = Pack<scalar_t, VEC>;
  const int TX = blockDim.x, TY = blockDim.y;
  const int64_t j_begin = static_cast<int64_t>(blockIdx.y) * g.chunk;
  const int64_t j_end = min64(g.Sv, j_begin + g.chunk);
  for (int64_t pb = static_cast<int64_t>(blockIdx.x) * TY; pb < g.P;
       pb += static_cast<int64_t>(gridDim.x) * TY) {
    const int64_t p = pb + threadIdx.y;
    if (p >= g.P) continue;
    const acc_t b = bias != nullptr ? static_cast<acc_t>(bias[channel_of(p, g.C)]) : acc_t(0);
    const pack_t* xp = reinterpret_cast<const pack_t*>(x) + p * g.Sv;
    pack_t* yp = reinterpret_cast<pack_t*>(y) + p * g.Sv;
    for (int64_t j0 = j_begin + threadIdx.x; j0 < j_end; j0 += static_cast<int64_t>(TX) * U) {
      pack_t in[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t j = j0 + static_cast<int64_t>(u) * TX;
        if (j < j_end) in[u] = xp[j];
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t j = j0 + static_cast<int64_t>(u) * TX;
        if (j < j_end) {
          pack_t out;
#pragma unroll
          for (int e = 0; e < VEC; ++e)
            out.v[e] = static_cast<scalar_t>(
                ActMath<A>::fwd(static_cast<acc_t>(in[u].v[e]) + b, alpha));
          yp[j] = out;
        }
      }
    }
    if (g.tail > 0 && p == 0 && blockIdx.y == 0 && threadIdx.x == 0) {
      for (int64_t i = g.Sv * VEC; i < g.Sv * VEC + g.tail; ++i)
        y[i] = static_cast<scalar_t>(ActMath<A>::fwd(static_cast<acc_t>(x[i]) + b, alpha));
    }
  }
}

// gx = grad * act'(x + bias[p % C]); when ws is not null, ws[p * K + chunk] = the chunk's sum
// of gx (bias not null then).
template <Act A, typename scalar_t, int VEC, int U>
__global__ void __launch_bounds__(kThreads)
    plane_bwd_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ x,
                     const scalar_t* __restrict__ bias, scalar_t* __restrict__ gx,
                     at::opmath_type<scalar_t>* __restrict__ ws, PlaneGeom g,
                     at::opmath_type<scalar_t> alpha) {
  using acc_t = at::opmath_type<scalar_t>;
  using pack_t = Pack<scalar_t, VEC>;
  __shared__ acc_t warp_sums[kThreads / 32];
  const int TX = blockDim.x, TY = blockDim.y;
  const int64_t j_begin = static_cast<int64_t>(blockIdx.y) * g.chunk;
  const int64_t j_end = min64(g.Sv, j_begin + g.chunk);
  // The loop bounds are uniform over the block: every thread reaches group_sum's barriers.
  for (int64_t pb = static_cast<int64_t>(blockIdx.x) * TY; pb < g.P;
       pb += static_cast<int64_t>(gridDim.x) * TY) {
    const int64_t p = pb + threadIdx.y;
    const bool active = p < g.P;
    acc_t s = acc_t(0);
    if (active) {
      const acc_t b = bias != nullptr ? static_cast<acc_t>(bias[channel_of(p, g.C)]) : acc_t(0);
      const pack_t* gp = reinterpret_cast<const pack_t*>(grad) + p * g.Sv;
      const pack_t* xp = reinterpret_cast<const pack_t*>(x) + p * g.Sv;
      pack_t* op = reinterpret_cast<pack_t*>(gx) + p * g.Sv;
      for (int64_t j0 = j_begin + threadIdx.x; j0 < j_end; j0 += static_cast<int64_t>(TX) * U) {
        pack_t gin[U], xin[U];
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const int64_t j = j0 + static_cast<int64_t>(u) * TX;
          if (j < j_end) {
            gin[u] = gp[j];
            xin[u] = xp[j];
          }
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const int64_t j = j0 + static_cast<int64_t>(u) * TX;
          if (j < j_end) {
            pack_t out;
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
              const acc_t v = static_cast<acc_t>(gin[u].v[e]) *
                              ActMath<A>::grad(grad_arg<A>(static_cast<acc_t>(xin[u].v[e]), b), alpha);
              s += v;
              out.v[e] = static_cast<scalar_t>(v);
            }
            op[j] = out;
          }
        }
      }
      if (g.tail > 0 && p == 0 && blockIdx.y == 0 && threadIdx.x == 0) {
        for (int64_t i = g.Sv * VEC; i < g.Sv * VEC + g.tail; ++i) {
          const acc_t v = static_cast<acc_t>(grad[i]) *
                          ActMath<A>::grad(grad_arg<A>(static_cast<acc_t>(x[i]), b), alpha);
          s += v;
          gx[i] = static_cast<scalar_t>(v);
        }
      }
    }
    if (ws != nullptr) {  // uniform over the grid
      s = group_sum(s, warp_sums);
      if (active && threadIdx.x == 0) ws[p * g.K + blockIdx.y] = s;
    }
  }
}

// ------------------------------------------------------------------------------------------
// Column kernels: x is (N, C) with C = Cv packs per row; bias along the columns.

template <Act A, typename scalar_t, int VEC, int U>
__global__ void __launch_bounds__(kThreads)
    col_fwd_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ bias,
                   scalar_t* __restrict__ y, int64_t N, int64_t Cv,
                   at::opmath_type<scalar_t> alpha) {
  using acc_t = at::opmath_type<scalar_t>;
  using pack_t = Pack<scalar_t, VEC>;
  const int TY = blockDim.y;
  const int64_t cv = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (cv >= Cv) return;  // no barrier in this kernel
  const pack_t bp = reinterpret_cast<const pack_t*>(bias)[cv];
  acc_t b[VEC];
#pragma unroll
  for (int e = 0; e < VEC; ++e) b[e] = static_cast<acc_t>(bp.v[e]);
  const pack_t* xp = reinterpret_cast<const pack_t*>(x);
  pack_t* yp = reinterpret_cast<pack_t*>(y);
  const int64_t step = static_cast<int64_t>(gridDim.y) * TY * U;
  for (int64_t r0 = static_cast<int64_t>(blockIdx.y) * TY * U + threadIdx.y; r0 < N; r0 += step) {
    pack_t in[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t r = r0 + static_cast<int64_t>(u) * TY;
      if (r < N) in[u] = xp[r * Cv + cv];
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t r = r0 + static_cast<int64_t>(u) * TY;
      if (r < N) {
        pack_t out;
#pragma unroll
        for (int e = 0; e < VEC; ++e)
          out.v[e] =
              static_cast<scalar_t>(ActMath<A>::fwd(static_cast<acc_t>(in[u].v[e]) + b[e], alpha));
        yp[r * Cv + cv] = out;
      }
    }
  }
}

// gx = grad * act'(x + bias); ws[blockIdx.y * C + c] = this block's sum of gx over its rows.
template <Act A, typename scalar_t, int VEC, int U>
__global__ void __launch_bounds__(kThreads)
    col_bwd_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ x,
                   const scalar_t* __restrict__ bias, scalar_t* __restrict__ gx,
                   at::opmath_type<scalar_t>* __restrict__ ws, int64_t N, int64_t Cv,
                   at::opmath_type<scalar_t> alpha) {
  using acc_t = at::opmath_type<scalar_t>;
  using pack_t = Pack<scalar_t, VEC>;
  __shared__ acc_t red[kThreads * VEC];
  const int TX = blockDim.x, TY = blockDim.y;
  const int64_t cv = static_cast<int64_t>(blockIdx.x) * TX + threadIdx.x;
  const bool active = cv < Cv;
  acc_t acc[VEC];
#pragma unroll
  for (int e = 0; e < VEC; ++e) acc[e] = acc_t(0);
  if (active) {
    const pack_t bp = reinterpret_cast<const pack_t*>(bias)[cv];
    acc_t b[VEC];
#pragma unroll
    for (int e = 0; e < VEC; ++e) b[e] = static_cast<acc_t>(bp.v[e]);
    const pack_t* gp = reinterpret_cast<const pack_t*>(grad);
    const pack_t* xp = reinterpret_cast<const pack_t*>(x);
    pack_t* op = reinterpret_cast<pack_t*>(gx);
    const int64_t step = static_cast<int64_t>(gridDim.y) * TY * U;
    for (int64_t r0 = static_cast<int64_t>(blockIdx.y) * TY * U + threadIdx.y; r0 < N;
         r0 += step) {
      pack_t gin[U], xin[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t r = r0 + static_cast<int64_t>(u) * TY;
        if (r < N) {
          gin[u] = gp[r * Cv + cv];
          xin[u] = xp[r * Cv + cv];
        }
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t r = r0 + static_cast<int64_t>(u) * TY;
        if (r < N) {
          pack_t out;
#pragma unroll
          for (int e = 0; e < VEC; ++e) {
            const acc_t v = static_cast<acc_t>(gin[u].v[e]) *
                            ActMath<A>::grad(grad_arg<A>(static_cast<acc_t>(xin[u].v[e]), b[e]), alpha);
            acc[e] += v;
            out.v[e] = static_cast<scalar_t>(v);
          }
          op[r * Cv + cv] = out;
        }
      }
    }
  }
  // Fixed-order tree over the TY rows of the block (TY is a power of two).
  const int slot = (threadIdx.y * TX + threadIdx.x) * VEC;
#pragma unroll
  for (int e = 0; e < VEC; ++e) red[slot + e] = acc[e];
  __syncthreads();
  for (int h = TY / 2; h > 0; h >>= 1) {
    if (static_cast<int>(threadIdx.y) < h) {
      const int other = ((threadIdx.y + h) * TX + threadIdx.x) * VEC;
#pragma unroll
      for (int e = 0; e < VEC; ++e) red[slot + e] += red[other + e];
    }
    __syncthreads();
  }
  if (threadIdx.y == 0 && active) {
    const int64_t C = Cv * VEC;
#pragma unroll
    for (int e = 0; e < VEC; ++e) ws[blockIdx.y * C + cv * VEC + e] = red[slot + e];
  }
}

// out[c] = sum over n < outer, k < K of ws[(n * C + c) * K + k], in a fixed order.
// Block (TX, TY): TX channels, TY threads splitting each channel's outer * K partials.
template <typename acc_t, typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    finalize_bias_kernel(const acc_t* __restrict__ ws, scalar_t* __restrict__ out,
                         int64_t outer, int64_t C, int64_t K) {
  __shared__ acc_t red[kThreads];
  const int TX = blockDim.x, TY = blockDim.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * TX + threadIdx.x;
  acc_t s = acc_t(0);
  if (c < C) {
    const int64_t count = outer * K;
    const int64_t step_n = TY / K, step_k = TY % K;
    int64_t n = threadIdx.y / K, k = threadIdx.y % K;
#pragma unroll 4
    for (int64_t j = threadIdx.y; j < count; j += TY) {
      s += ws[(n * C + c) * K + k];
      n += step_n;
      k += step_k;
      if (k >= K) {
        k -= K;
        ++n;
      }
    }
  }
  const int slot = threadIdx.y * TX + threadIdx.x;
  red[slot] = s;
  __syncthreads();
  for (int h = TY / 2; h > 0; h >>= 1) {
    if (static_cast<int>(threadIdx.y) < h) red[slot] += red[slot + h * TX];
    __syncthreads();
  }
  if (threadIdx.y == 0 && c < C) out[c] = static_cast<scalar_t>(red[threadIdx.x]);
}

// ------------------------------------------------------------------------------------------
// Launch configuration.

struct PlaneLaunch {
  dim3 grid, block;
  PlaneGeom g;
};

// P planes of S elements, bias index p % C. vec: pack size used (1 = scalar), unroll: packs
// per thread per iteration.
PlaneLaunch plane_launch(int64_t P, int64_t C, int64_t S, int vec, int unroll, int sms) {
  PlaneLaunch l;
  l.g.P = P;
  l.g.C = C;
  l.g.Sv = S / vec;
  l.g.tail = S - l.g.Sv * vec;  // nonzero only when P == 1 (the caller's vec choice)
  // Threads per plane: enough for one pass over a short plane; for long planes the width in
  // 32..256 that leaves the fewest idle lanes in the last pass, among those that do not leave
  // plane rows of the block empty (ties: the wider).
  const int64_t per_plane = ceil_div(l.g.Sv, unroll);
  int TX = next_pow2(per_plane, kThreads);
  if (per_plane > kThreads) {
    int64_t best = -1;
    for (int w = kThreads; w >= 32; w /= 2) {
      if (kThreads / w > P) break;
      const int64_t waste = ceil_div(per_plane, w) * w - per_plane;
      if (best < 0 || waste < best) {
        best = waste;
        TX = w;
      }
    }
  }
  const int TY = kThreads / TX;
  const int64_t target = static_cast<int64_t>(sms) * kBlocksPerSM;
  const int64_t plane_blocks = ceil_div(P, TY);
  int64_t K = 1;  // split planes only when whole planes would leave most of the GPU idle
  if (2 * plane_blocks <= target && l.g.Sv > 0)
    K = min64(ceil_div(target, plane_blocks), ceil_div(l.g.Sv, static_cast<int64_t>(TX) * unroll));
  K = max64(1, min64(K, kMaxGridY));
  l.g.chunk = max64(1, ceil_div(l.g.Sv, K));
  l.g.K = l.g.Sv > 0 ? ceil_div(l.g.Sv, l.g.chunk) : 1;
  const int64_t gx = min64(plane_blocks, max64(1, 4 * target / l.g.K));
  l.grid = dim3(static_cast<unsigned>(gx), static_cast<unsigned>(l.g.K));
  l.block = dim3(TX, TY);
  return l;
}

struct ColLaunch {
  dim3 grid, block;
  int64_t Cv;
};

ColLaunch col_launch(int64_t N, int64_t C, int vec, int unroll, int sms, int64_t waves) {
  ColLaunch l;
  l.Cv = C / vec;
  const int TX = next_pow2(l.Cv, 32);
  const int TY = kThreads / TX;
  const int64_t gx = ceil_div(l.Cv, TX);
  const int64_t target = static_cast<int64_t>(sms) * kBlocksPerSM * waves;
  const int64_t row_blocks = ceil_div(N, static_cast<int64_t>(TY) * unroll);
  const int64_t gy = max64(1, min64(min64(row_blocks, target / gx), kMaxGridY));
  TORCH_CHECK(gx <= 0x7fffffff, "lightdl: too many columns for one launch: ", C);
  l.grid = dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
  l.block = dim3(TX, TY);
  return l;
}

struct Geometry {
  int64_t N, C, S;
};

// How a (N, C, S) problem is run: column kernels for (N, C) with C > 1, plane kernels for the
// rest; with C == 1 every plane has the same bias, so all of x is one plane.
enum class Mode { Plane, Column };

Mode normalise(Geometry& g, bool has_bias) {
  if (!has_bias || g.C == 1) {
    g = {1, 1, g.N * g.C * g.S};
    return Mode::Plane;
  }
  return g.S == 1 ? Mode::Column : Mode::Plane;
}

Geometry geometry(const at::Tensor& x) {
  if (x.dim() < 2) return {1, 1, x.numel()};
  int64_t S = 1;
  for (int64_t d = 2; d < x.dim(); ++d) S *= x.size(d);
  return {x.size(0), x.size(1), S};
}

template <typename acc_t, typename scalar_t>
void finalize_bias(const acc_t* ws, scalar_t* out, int64_t outer, int64_t C, int64_t K,
                   cudaStream_t stream) {
  const int TX = next_pow2(C, 32);
  const int TY = kThreads / TX;
  const dim3 grid(static_cast<unsigned>(ceil_div(C, TX)));
  finalize_bias_kernel<acc_t, scalar_t><<<grid, dim3(TX, TY), 0, stream>>>(ws, out, outer, C, K);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// ------------------------------------------------------------------------------------------
// Host entry points.

// x, y contiguous, same shape; bias undefined or (C,).
void forward(const at::Tensor& x, const at::Tensor& bias, at::Tensor& y, Act act, double alpha) {
  Geometry g = geometry(x);
  const bool has_bias = bias.defined();
  const Mode mode = normalise(g, has_bias);
  const int sms = sm_count(x.get_device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bias_act_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    constexpr int V = kPack<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* bp = has_bias ? bias.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    const acc_t a = static_cast<acc_t>(alpha);
    const bool ptrs_ok = aligned16(xp) && aligned16(yp);
    if (mode == Mode::Plane) {  // bias is read one scalar per plane: its alignment is moot
      const bool vec = ptrs_ok && (g.N * g.C == 1 || g.S % V == 0);
      const PlaneLaunch l = plane_launch(g.N * g.C, g.C, g.S, vec ? V : 1, vec ? 1 : V, sms);
      LIGHTDL_DISPATCH_ACT(act, [&] {
        if (vec)
          plane_fwd_kernel<ACT, scalar_t, V, 1><<<l.grid, l.block, 0, stream>>>(xp, bp, yp, l.g, a);
        else
          plane_fwd_kernel<ACT, scalar_t, 1, V><<<l.grid, l.block, 0, stream>>>(xp, bp, yp, l.g, a);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    } else {
      const bool vec = ptrs_ok && aligned16(bp) && g.C % V == 0;
      const ColLaunch l = col_launch(g.N, g.C, vec ? V : 1, vec ? 1 : V, sms, 4);
      LIGHTDL_DISPATCH_ACT(act, [&] {
        if (vec)
          col_fwd_kernel<ACT, scalar_t, V, 1>
              <<<l.grid, l.block, 0, stream>>>(xp, bp, yp, g.N, l.Cv, a);
        else
          col_fwd_kernel<ACT, scalar_t, 1, V>
              <<<l.grid, l.block, 0, stream>>>(xp, bp, yp, g.N, l.Cv, a);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    }
  });
}

// grad, x, gx contiguous, same shape; bias undefined or (C,), then gb (C,) too.
void backward(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& bias, at::Tensor& gx,
              at::Tensor& gb, Act act, double alpha) {
  Geometry g = geometry(x);
  const bool has_bias = bias.defined();
  const Mode mode = normalise(g, has_bias);
  const int sms = sm_count(x.get_device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(),
                                  "bias_act_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    constexpr int V = kPack<scalar_t>;
    const auto acc_dtype = c10::CppTypeToScalarType<acc_t>::value;
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* bp = has_bias ? bias.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* op = gx.mutable_data_ptr<scalar_t>();
    const acc_t a = static_cast<acc_t>(alpha);
    const bool ptrs_ok = aligned16(gp) && aligned16(xp) && aligned16(op);
    if (mode == Mode::Plane) {
      const bool vec = ptrs_ok && (g.N * g.C == 1 || g.S % V == 0);
      const PlaneLaunch l = plane_launch(g.N * g.C, g.C, g.S, vec ? V : 1, vec ? 1 : V, sms);
      at::Tensor ws;
      acc_t* wp = nullptr;
      if (has_bias) {
        ws = at::empty({l.g.P * l.g.K}, x.options().dtype(acc_dtype));
        wp = ws.mutable_data_ptr<acc_t>();
      }
      LIGHTDL_DISPATCH_ACT_BACKWARD(act, [&] {
        if (vec)
          plane_bwd_kernel<ACT, scalar_t, V, 1>
              <<<l.grid, l.block, 0, stream>>>(gp, xp, bp, op, wp, l.g, a);
        else
          plane_bwd_kernel<ACT, scalar_t, 1, V>
              <<<l.grid, l.block, 0, stream>>>(gp, xp, bp, op, wp, l.g, a);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
      // Planes are (n, c) pairs (one plane when C == 1, see normalise): ws is (N, C, K).
      if (has_bias)
        finalize_bias<acc_t, scalar_t>(wp, gb.mutable_data_ptr<scalar_t>(), g.N, g.C, l.g.K,
                                       stream);
    } else {
      const bool vec = ptrs_ok && aligned16(bp) && g.C % V == 0;
      const ColLaunch l = col_launch(g.N, g.C, vec ? V : 1, vec ? 1 : V, sms, 1);
      at::Tensor ws =
          at::empty({static_cast<int64_t>(l.grid.y) * g.C}, x.options().dtype(acc_dtype));
      acc_t* wp = ws.mutable_data_ptr<acc_t>();
      LIGHTDL_DISPATCH_ACT_BACKWARD(act, [&] {
        if (vec)
          col_bwd_kernel<ACT, scalar_t, V, 1>
              <<<l.grid, l.block, 0, stream>>>(gp, xp, bp, op, wp, g.N, l.Cv, a);
        else
          col_bwd_kernel<ACT, scalar_t, 1, V>
              <<<l.grid, l.block, 0, stream>>>(gp, xp, bp, op, wp, g.N, l.Cv, a);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
      // ws is (grid.y, C, 1).
      finalize_bias<acc_t, scalar_t>(wp, gb.mutable_data_ptr<scalar_t>(), l.grid.y, g.C, 1, stream);
    }
  });
}

// The device half of BiasActOps (csrc/bias_act_ops.h).
struct CudaImpl {
  static at::Tensor forward(const at::Tensor& x, const at::Tensor& bias, Act act, double alpha) {
    c10::cuda::CUDAGuard guard(x.device());
    const at::Tensor xc = x.contiguous();
    const at::Tensor bc = bias.defined() ? bias.contiguous() : at::Tensor();
    at::Tensor y = at::empty(xc.sizes(), xc.options());
    if (xc.numel() == 0) return y;
    cuda::forward(xc, bc, y, act, alpha);
    return y;
  }

  static std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& grad, const at::Tensor& x,
                                                     const at::Tensor& bias, Act act,
                                                     double alpha) {
    c10::cuda::CUDAGuard guard(x.device());
    const at::Tensor gc = grad.contiguous();
    const at::Tensor xc = x.contiguous();
    const at::Tensor bc = bias.defined() ? bias.contiguous() : at::Tensor();
    at::Tensor gx = at::empty(xc.sizes(), xc.options());
    at::Tensor gb;
    if (bc.defined()) {
      const int64_t C = geometry(xc).C;
      gb = xc.numel() == 0 ? at::zeros({C}, bc.options()) : at::empty({C}, bc.options());
    }
    if (xc.numel() == 0) return {gx, gb};
    cuda::backward(gc, xc, bc, gx, gb, act, alpha);
    return {gx, gb};
  }
};

}  // namespace
}  // namespace cuda
}  // namespace lightdl

TORCH_LIBRARY_IMPL(lightdl, CUDA, m) {
  lightdl::BiasActOps<lightdl::cuda::CudaImpl>::register_kernels(m);
}

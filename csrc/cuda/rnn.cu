// CUDA kernels of one LSTM/GRU time step (csrc/rnn_kernels.h); the math is csrc/rnn_math.h,
// shared with the CPU kernels. The time loop (csrc/rnn_layer.h) is device-generic: per step it
// runs a cuBLAS GEMM (at::addmm_out) and then one of these kernels on the current stream.
//
// One thread per (row b, hidden unit j), grid-stride; a row's gates are read with unit
// stride along j, so a warp's loads are coalesced. A row past its sequence end (t >= len[b])
// keeps its state, outputs 0 and gets zero gate gradients, exactly as the CPU kernels.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>

#include "rnn_kernels.h"
#include "rnn_math.h"

namespace lightdl {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;  // grid-stride beyond this

__device__ __forceinline__ bool live(const int64_t* len, int64_t t, int64_t b) {
  return len == nullptr || t < len[b];
}

template <typename T>
__global__ void __launch_bounds__(kThreads) lstm_fwd_kernel(rnn::LstmFwdStep a) {
  const int64_t H = a.H, n = a.B * H;
  T* gates = static_cast<T*>(a.gates);
  const T* bias = static_cast<const T*>(a.bias);
  T *c = static_cast<T*>(a.c), *h = static_cast<T*>(a.h), *y = static_cast<T*>(a.y),
    *cs = static_cast<T*>(a.cs);
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < n;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = k / H, j = k - b * H;
    T* g = gates + b * 4 * H;
    T i = g[j] + bias[j], f = g[H + j] + bias[H + j], gg = g[2 * H + j] + bias[2 * H + j],
      o = g[3 * H + j] + bias[3 * H + j], cn, hn;
    const T cp = c[k];
    rnn_math::lstm_fwd(i, f, gg, o, cp, cn, hn);
    g[j] = i, g[H + j] = f, g[2 * H + j] = gg, g[3 * H + j] = o;
    if (live(a.len, a.t, b)) {
      cs[k] = cn, c[k] = cn, h[k] = hn, y[k] = hn;
    } else {
      cs[k] = cp, y[k] = T(0);
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) lstm_bwd_kernel(rnn::LstmBwdStep a) {
  const int64_t H = a.H, n = a.B * H;
  const T *gates = static_cast<const T*>(a.gates), *c = static_cast<const T*>(a.c),
          *cp = static_cast<const T*>(a.c_prev), *gy = static_cast<const T*>(a.gy);
  T *dh = static_cast<T*>(a.dh), *dc = static_cast<T*>(a.dc), *dgates = static_cast<T*>(a.dgates);
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < n;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = k / H, j = k - b * H;
    T* dg = dgates + b * 4 * H;
    if (!live(a.len, a.t, b)) {  // dh, dc pass through unchanged
      dg[j] = dg[H + j] = dg[2 * H + j] = dg[3 * H + j] = T(0);
      continue;
    }
    const T* g = gates + b * 4 * H;
    const T dhk = gy != nullptr ? dh[k] + gy[k] : dh[k];
    T dck = dc[k], di, df, dgg, d_o;
    rnn_math::lstm_bwd(g[j], g[H + j], g[2 * H + j], g[3 * H + j], cp[k], c[k], dhk, dck, di, df,
                       dgg, d_o);
    dg[j] = di, dg[H + j] = df, dg[2 * H + j] = dgg, dg[3 * H + j] = d_o;
    dc[k] = dck;
    dh[k] = T(0);  // h_prev reaches h' only through W_hh (the GEMM that follows)
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) gru_fwd_kernel(rnn::GruFwdStep a) {
  const int64_t H = a.H, n = a.B * H;
  const T *xg = static_cast<const T*>(a.xg), *hg = static_cast<const T*>(a.hg),
          *bi = static_cast<const T*>(a.b_ih), *bh = static_cast<const T*>(a.b_hh);
  T *h = static_cast<T*>(a.h), *y = static_cast<T*>(a.y), *saved = static_cast<T*>(a.saved);
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < n;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = k / H, j = k - b * H;
    const T *x3 = xg + b * 3 * H, *h3 = hg + b * 3 * H;
    T* s = saved + b * 4 * H;
    T r, z, nn, hn;
    const T hgn = h3[2 * H + j] + bh[2 * H + j];
    rnn_math::gru_fwd(x3[j] + bi[j], x3[H + j] + bi[H + j], x3[2 * H + j] + bi[2 * H + j],
                      h3[j] + bh[j], h3[H + j] + bh[H + j], hgn, h[k], r, z, nn, hn);
    s[j] = r, s[H + j] = z, s[2 * H + j] = nn, s[3 * H + j] = hgn;
    if (live(a.len, a.t, b)) {
      y[k] = hn, h[k] = hn;
    } else {
      y[k] = T(0);
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) gru_bwd_kernel(rnn::GruBwdStep a) {
  const int64_t H = a.H, n = a.B * H;
  const T *saved = static_cast<const T*>(a.saved), *hp = static_cast<const T*>(a.h_prev),
          *gy = static_cast<const T*>(a.gy);
  T *dh = static_cast<T*>(a.dh), *dx = static_cast<T*>(a.dx), *dhg = static_cast<T*>(a.dhg);
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < n;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = k / H, j = k - b * H;
    T *dx3 = dx + b * 3 * H, *dh3 = dhg + b * 3 * H;
    if (!live(a.len, a.t, b)) {  // dh passes through unchanged
      dx3[j] = dx3[H + j] = dx3[2 * H + j] = T(0);
      dh3[j] = dh3[H + j] = dh3[2 * H + j] = T(0);
      continue;
    }
    const T* s = saved + b * 4 * H;
    const T dhk = gy != nullptr ? dh[k] + gy[k] : dh[k];
    T dr, dz, dn, dhn, dhp;
    rnn_math::gru_bwd(s[j], s[H + j], s[2 * H + j], s[3 * H + j], hp[k], dhk, dr, dz, dn, dhn, dhp);
    dx3[j] = dr, dx3[H + j] = dz, dx3[2 * H + j] = dn;
    dh3[j] = dr, dh3[H + j] = dz, dh3[2 * H + j] = dhn;
    dh[k] = dhp;
  }
}

template <typename Step>
void launch(void (*f32)(Step), void (*f64)(Step), bool dbl, const Step& a) {
  const int64_t n = a.B * a.H;
  if (n == 0) return;
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (dbl)
    f64<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(a);
  else
    f32<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(a);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

void lstm_fwd_step(bool dbl, const rnn::LstmFwdStep& a) {
  launch(lstm_fwd_kernel<float>, lstm_fwd_kernel<double>, dbl, a);
}
void lstm_bwd_step(bool dbl, const rnn::LstmBwdStep& a) {
  launch(lstm_bwd_kernel<float>, lstm_bwd_kernel<double>, dbl, a);
}
void gru_fwd_step(bool dbl, const rnn::GruFwdStep& a) {
  launch(gru_fwd_kernel<float>, gru_fwd_kernel<double>, dbl, a);
}
void gru_bwd_step(bool dbl, const rnn::GruBwdStep& a) {
  launch(gru_bwd_kernel<float>, gru_bwd_kernel<double>, dbl, a);
}

}  // namespace cuda
}  // namespace lightdl

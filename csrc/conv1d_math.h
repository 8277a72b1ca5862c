// Geometry of a 1-D convolution, shared by the CPU kernels (csrc/cpu/conv1d*.{h,cpp}), the CUDA
// kernels (csrc/cuda/conv1d.cu) and the device-generic op (csrc/conv1d.cpp).
//
// The direct kernels work on a zero-padded input of length Lp = L + 2 * padding, so that
// output position l reads input positions l * stride + k * dilation (k < K), all inside
// [0, Lp): no bounds test in the inner loops. The CPU kernels also split each padded row into
// its `stride` phases ("phased" layout: position m * S + r stored at r * Lph + m), so that tap k
// reads the contiguous run phase (k D) % S, offsets (k D) / S + l: every stride vectorises
// like stride 1.
#pragma once

#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define LIGHTDL_CONV_HD __host__ __device__ __forceinline__
#else
#define LIGHTDL_CONV_HD inline
#endif

namespace lightdl {

struct Conv1dGeom {
  int64_t N;   // batch
  int64_t C;   // input channels
  int64_t O;   // output channels
  int64_t K;   // kernel size
  int64_t L;   // input length (unpadded)
  int64_t P;   // padding, each side
  int64_t Lp;  // padded input length, L + 2P
  int64_t Lo;  // output length
  int64_t S;   // stride
  int64_t D;   // dilation
  int64_t Lph; // phase length of the phased layout, ceil(Lp / S); a phased row has S * Lph
};

// Offset of tap k in a phased row (see above): output position l reads offset + l.
LIGHTDL_CONV_HD int64_t conv1d_tap(const Conv1dGeom& g, int64_t k) {
  const int64_t q = k * g.D;
  return (q % g.S) * g.Lph + q / g.S;
}

// L_out = floor((L + 2p - d(K-1) - 1) / s) + 1, as in nn.Conv1d; <= 0 means "too short".
LIGHTDL_CONV_HD int64_t conv1d_out_len(int64_t L, int64_t K, int64_t s, int64_t p, int64_t d) {
  const int64_t span = L + 2 * p - d * (K - 1) - 1;
  return span < 0 ? 0 : span / s + 1;
}

LIGHTDL_CONV_HD Conv1dGeom conv1d_geom(int64_t N, int64_t C, int64_t O, int64_t K, int64_t L,
                                       int64_t s, int64_t p, int64_t d) {
  const int64_t Lp = L + 2 * p;
  return Conv1dGeom{N, C, O, K, L, p, Lp, conv1d_out_len(L, K, s, p, d), s, d, (Lp + s - 1) / s};
}

}  // namespace lightdl

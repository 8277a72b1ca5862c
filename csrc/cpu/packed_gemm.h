// Single-precision GEMM with a right operand packed once for many products, through the MKL
// that PyTorch's x86 builds carry: the LSTM/GRU time loops multiply every step's hidden state
// by the same W_hh (forward) or W_hh^T (backward), and MKL's packed GEMM skips re-packing it
// each step. Where the loaded torch has no MKL, `make` returns null and callers use at::addmm.
#pragma once

#include <cstdint>
#include <memory>

#include <ATen/core/Tensor.h>

namespace lightdl {
namespace cpu {

class PackedRight {
 public:
  // Row-major W (k x n, leading dimension n), packed for products with up to m_max rows;
  // null where MKL's packed GEMM is not available.
  static std::unique_ptr<PackedRight> make(const float* W, int64_t k, int64_t n, int64_t m_max);

  // Row-major C (m x n, ldc) = A (m x k, lda) W + beta C.
  void gemm(const float* A, int64_t lda, int64_t m, float beta, float* C, int64_t ldc) const;

 private:
  PackedRight(int64_t k, int64_t n, size_t bytes);
  int64_t k_, n_;
  at::Tensor buf_;  // not zero-filled: MKL asks for ~8 MB whatever the size, and writes little
};

}  // namespace cpu
}  // namespace lightdl

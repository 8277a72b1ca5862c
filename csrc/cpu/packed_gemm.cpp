// MKL's packed SGEMM (csrc/cpu/packed_gemm.h). The Fortran entry points are declared weak, so
// the extension still loads against a torch built without MKL (they resolve to null there).
//
// Measured on the benchmark's recurrent GEMMs (2-core Xeon, 1 thread, per step): batch 64 x
// hidden 32: at::addmm_out 9.7 us, SGEMM 8.0 us, packed 7.7 us; batch 32 x hidden 128: 61,
// 56, 49 us; batch 128 x hidden 256: 760, 751, 517 us. Packing costs one such product or so,
// once per sequence.
#include "packed_gemm.h"

#include <ATen/ops/empty.h>

extern "C" {
// MKL's Fortran interface (LP64: 32-bit integers).
size_t SGEMM_PACK_GET_SIZE(const char* identifier, const int* m, const int* n, const int* k)
    __attribute__((weak));
void SGEMM_PACK(const char* identifier, const char* trans, const int* m, const int* n,
                const int* k, const float* alpha, const float* src, const int* ld, float* dest)
    __attribute__((weak));
void SGEMM_COMPUTE(const char* transa, const char* transb, const int* m, const int* n,
                   const int* k, const float* a, const int* lda, const float* b, const int* ldb,
                   const float* beta, float* c, const int* ldc) __attribute__((weak));
}

namespace lightdl {
namespace cpu {

// MKL is column-major: row-major C = A W is column-major C^T = W^T A^T, where W^T is W's own
// memory read column-major. So W is MKL's left operand "A", packed; A^T is its right operand.

PackedRight::PackedRight(int64_t k, int64_t n, size_t bytes)
    : k_(k), n_(n),
      buf_(at::empty({static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float))},
                     at::TensorOptions().dtype(at::kFloat))) {}

std::unique_ptr<PackedRight> PackedRight::make(const float* W, int64_t k, int64_t n,
                                               int64_t m_max) {
  if (SGEMM_PACK_GET_SIZE == nullptr || SGEMM_PACK == nullptr || SGEMM_COMPUTE == nullptr)
    return nullptr;
  constexpr int64_t kMax = 1 << 30;  // 32-bit MKL integers
  if (k < 1 || n < 1 || m_max < 1 || k > kMax || n > kMax || m_max > kMax) return nullptr;
  const int mc = static_cast<int>(n), nc = static_cast<int>(m_max), kc = static_cast<int>(k);
  const size_t bytes = SGEMM_PACK_GET_SIZE("A", &mc, &nc, &kc);
  std::unique_ptr<PackedRight> p(new PackedRight(k, n, bytes));
  const float one = 1.f;
  SGEMM_PACK("A", "N", &mc, &nc, &kc, &one, W, &mc, p->buf_.mutable_data_ptr<float>());
  return p;
}

void PackedRight::gemm(const float* A, int64_t lda, int64_t m, float beta, float* C,
                       int64_t ldc) const {
  if (m == 0) return;
  const int mc = static_cast<int>(n_), nc = static_cast<int>(m), kc = static_cast<int>(k_);
  const int ldb = static_cast<int>(lda), ldcc = static_cast<int>(ldc);
  SGEMM_COMPUTE("P", "N", &mc, &nc, &kc, buf_.const_data_ptr<float>(), &mc, A, &ldb, &beta, C, &ldcc);
}

}  // namespace cpu
}  // namespace lightdl

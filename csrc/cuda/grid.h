// Launch shape of the grid-stride CUDA kernels (act_pool.cu, conv1d.cu): 256 threads per block,
// enough blocks for one element per thread up to a cap beyond which the loops stride.
#pragma once

#include <cstdint>

namespace lightdl {
namespace cuda {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535LL * 8;

inline int64_t blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b);
}

}  // namespace cuda
}  // namespace lightdl

// Work split into P blocks of a batch, one per thread, each block's GEMMs run by MKL on that
// thread alone: the LSTM/GRU time loops (csrc/lstm.cpp, gru.cpp) and the conv1d GEMM path
// (csrc/cpu/conv1d_gemm.cpp), whose small products lose more to MKL's own two-thread split
// than they gain from it.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>

#include <cstdint>

#include "mkl_threads.h"

namespace lightdl::cpu {

// f(p, r0, r1) for each of the P blocks [r0, r1) of [0, N), in parallel (P <= 1: on the
// calling thread, as one block).
template <typename F>
void for_blocks(int64_t P, int64_t N, const F& f) {
  if (P <= 1) {
    f(int64_t{0}, int64_t{0}, N);
    return;
  }
  at::parallel_for(0, P, 1, [&](int64_t p0, int64_t p1) {
    // Worker threads do not inherit the caller's dispatch state: stay below autograd.
    at::AutoDispatchBelowADInplaceOrView below;
    const MklSingleThread mkl_one_thread;  // each block's GEMMs on its own thread
    for (int64_t p = p0; p < p1; ++p) f(p, N * p / P, N * (p + 1) / P);
  });
}

}  // namespace lightdl::cpu

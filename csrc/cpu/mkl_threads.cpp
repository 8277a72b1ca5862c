// MKL's thread-local thread count (csrc/cpu/mkl_threads.h). Declared weak, as in
// packed_gemm.cpp, so that the extension also loads against a torch built without MKL.
#include "mkl_threads.h"

extern "C" {
// The Fortran entry point (argument by pointer); returns the previous thread-local count,
// 0 meaning "follow the global setting".
int MKL_SET_NUM_THREADS_LOCAL(const int* nthreads) __attribute__((weak));
}

namespace lightdl {
namespace cpu {

MklSingleThread::MklSingleThread() {
  if (MKL_SET_NUM_THREADS_LOCAL == nullptr) return;
  const int one = 1;
  previous_ = MKL_SET_NUM_THREADS_LOCAL(&one);
  set_ = true;
}

MklSingleThread::~MklSingleThread() {
  if (set_) MKL_SET_NUM_THREADS_LOCAL(&previous_);
}

}  // namespace cpu
}  // namespace lightdl

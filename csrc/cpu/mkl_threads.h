// MKL calls made from inside one of our own parallel regions should run on the calling
// thread alone: the LSTM/GRU time loops run one block of batch rows per thread, each block
// with its own small GEMMs (for_blocks in csrc/cpu/blocks.h). MKL runs them on one thread there
// anyway (a nested region gets one thread), but told so up front it took less time: on the
// benchmark shapes at 2 threads (AMD EPYC, interleaved in one process, two runs) the LSTM
// forward op 3-14% less, forward+backward -1-6%; the GRU's forward 0-15%, forward+backward
// -5-18% (one run).
#pragma once

namespace lightdl {
namespace cpu {

// While alive, MKL runs single-threaded on this thread (MKL's thread-local setting; the
// previous one is restored on destruction). A no-op where the loaded torch has no MKL.
class MklSingleThread {
 public:
  MklSingleThread();
  ~MklSingleThread();
  MklSingleThread(const MklSingleThread&) = delete;
  MklSingleThread& operator=(const MklSingleThread&) = delete;

 private:
  int previous_ = 0;
  bool set_ = false;
};

}  // namespace cpu
}  // namespace lightdl

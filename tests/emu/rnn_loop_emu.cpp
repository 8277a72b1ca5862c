// Runs the CUDA kernels of the one-launch LSTM / GRU loops (csrc/cuda/rnn_loop_kernels.cuh) on
// the CPU, for tests/test_rnn_loop_emulated.py: each block's CUDA threads are std::threads, one
// per threadIdx.x, __syncthreads is a std::barrier, shared memory is a buffer filled with NaN
// bytes before each block (as uninitialised shared memory may hold anything), and blocks run
// one after another (they never communicate). float64 only; the launch rules (rows per block,
// register limits) are the host code's and are not emulated.
#include <torch/extension.h>

#include <barrier>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__

struct EmuDim3 {
  unsigned x = 0;
};
thread_local EmuDim3 threadIdx;
EmuDim3 blockIdx, blockDim;
std::barrier<>* emu_barrier = nullptr;
inline void __syncthreads() { emu_barrier->arrive_and_wait(); }
template <class T>
T __ldg(const T* p) {
  return *p;
}

namespace lightdl {
namespace cuda {
namespace {
alignas(64) unsigned char smem_raw[1 << 20];  // the kernels' `extern __shared__` buffer
}  // namespace
}  // namespace cuda
}  // namespace lightdl

#include "cuda/rnn_loop_kernels.cuh"

namespace {
using lightdl::cuda::Cell;
namespace lc = lightdl::cuda;
namespace rnn = lightdl::rnn;

template <class Kernel, class Args>
void run_blocks(Kernel kernel, const Args& a, int64_t B, int64_t H, int R) {
  const unsigned threads = static_cast<unsigned>((H + 31) / 32 * 32);
  blockDim.x = threads;
  for (int64_t b = 0; b * R < B; ++b) {
    blockIdx.x = static_cast<unsigned>(b);
    std::memset(lc::smem_raw, 0xff, sizeof(lc::smem_raw));
    std::barrier<> bar(threads);
    emu_barrier = &bar;
    std::vector<std::thread> pool;
    for (unsigned i = 0; i < threads; ++i)
      pool.emplace_back([&, i] {
        threadIdx.x = i;
        kernel(a);
      });
    for (auto& t : pool) t.join();
  }
}

template <Cell C>
void fwd_r(int R, const rnn::LoopFwd& a) {
  switch (R) {
    case 8: return run_blocks(lc::fwd_loop<C, double, 8>, a, a.B, a.H, 8);
    case 4: return run_blocks(lc::fwd_loop<C, double, 4>, a, a.B, a.H, 4);
    case 2: return run_blocks(lc::fwd_loop<C, double, 2>, a, a.B, a.H, 2);
    default: return run_blocks(lc::fwd_loop<C, double, 1>, a, a.B, a.H, 1);
  }
}

template <Cell C>
void bwd_r(int R, const rnn::LoopBwd& a) {
  switch (R) {
    case 8: return run_blocks(lc::bwd_loop<C, double, 8>, a, a.B, a.H, 8);
    case 4: return run_blocks(lc::bwd_loop<C, double, 4>, a, a.B, a.H, 4);
    case 2: return run_blocks(lc::bwd_loop<C, double, 2>, a, a.B, a.H, 2);
    default: return run_blocks(lc::bwd_loop<C, double, 1>, a, a.B, a.H, 1);
  }
}

void* ptr(const torch::Tensor& t) { return t.numel() ? t.data_ptr() : nullptr; }
const int64_t* len_ptr(const torch::Tensor& t) {
  return t.numel() ? t.data_ptr<int64_t>() : nullptr;
}

// The fields of rnn::LoopFwd / LoopBwd (csrc/rnn_kernels.h), as contiguous float64 CPU tensors;
// an empty tensor stands for a null pointer.
void fwd(bool lstm, int64_t R, torch::Tensor gates, torch::Tensor w_hh_t, torch::Tensor bias,
         torch::Tensor bias_hh, torch::Tensor h, torch::Tensor c, torch::Tensor y,
         torch::Tensor saved, torch::Tensor len) {
  const rnn::LoopFwd a{gates.data_ptr(), w_hh_t.data_ptr(), bias.data_ptr(), ptr(bias_hh),
                       h.data_ptr(), ptr(c), y.data_ptr(), ptr(saved), len_ptr(len),
                       gates.size(0), gates.size(1), h.size(1)};
  if (lstm) fwd_r<Cell::LSTM>(static_cast<int>(R), a);
  else fwd_r<Cell::GRU>(static_cast<int>(R), a);
}

void bwd(bool lstm, int64_t R, int64_t T, torch::Tensor saved, torch::Tensor cs, torch::Tensor c0,
         torch::Tensor y, torch::Tensor h0, torch::Tensor gy, torch::Tensor w_hh, torch::Tensor dh,
         torch::Tensor dc, torch::Tensor dg, torch::Tensor dg_hh, torch::Tensor len) {
  const rnn::LoopBwd a{saved.data_ptr(), ptr(cs), ptr(c0), ptr(y), ptr(h0), ptr(gy),
                       w_hh.data_ptr(), dh.data_ptr(), ptr(dc), dg.data_ptr(), ptr(dg_hh),
                       len_ptr(len), T, dh.size(0), dh.size(1)};
  if (lstm) bwd_r<Cell::LSTM>(static_cast<int>(R), a);
  else bwd_r<Cell::GRU>(static_cast<int>(R), a);
}
}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("fwd", &fwd);
  m.def("bwd", &bwd);
}

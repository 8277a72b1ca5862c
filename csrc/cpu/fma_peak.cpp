// The CPU's multiply-add peak for the instruction set our kernels run (cpu_isa()): a loop of
// independent fused multiply-adds on registers only, no memory traffic, on every thread.
// `lightdl bench` holds compute-bound ops against it. torch.mm's rate is not a bound: on AMD
// CPUs with AVX-512, MKL runs its AVX2 kernels (~110 GFLOP/s per Zen 5 core against ~270 for
// this loop), and our own kernels there reached 160% of "the GEMM rate".
#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>

namespace lightdl {
const char* cpu_isa();  // csrc/cpu/isa.cpp

namespace cpu {
namespace {

// ACC accumulators of BYTES-byte vectors updated as acc = acc * a + b: ACC independent chains
// hide the FMA latency (4-5 cycles on 2 pipes: at least 8-10 chains in flight). a < 1 keeps
// every value bounded (it tends to b / (1 - a)), so no inf or denormal slows the loop. The
// unrolled array lives in registers (objdump: one vfmadd per accumulator and iteration, no
// load or store); an empty asm barrier per accumulator had put it on the stack, at half the
// rate. Float rounding keeps GCC from folding iterations.
#define LIGHTDL_FMA_LOOP(NAME, ATTR, BYTES, ACC)                                     \
  ATTR double NAME(int64_t iters, float a, float b) {                                \
    typedef float V __attribute__((vector_size(BYTES)));                             \
    constexpr int kLanes = BYTES / sizeof(float);                                    \
    V acc[ACC], va, vb;                                                              \
    for (int l = 0; l < kLanes; ++l) va[l] = a, vb[l] = b;                           \
    for (int k = 0; k < ACC; ++k)                                                    \
      for (int l = 0; l < kLanes; ++l) acc[k][l] = float(k + l);                     \
    for (int64_t i = 0; i < iters; ++i) {                                            \
      _Pragma("GCC unroll 16") for (int k = 0; k < ACC; ++k) acc[k] = acc[k] * va + vb; \
    }                                                                                \
    float sum = 0.f;                                                                 \
    for (int k = 0; k < ACC; ++k)                                                    \
      for (int l = 0; l < kLanes; ++l) sum += acc[k][l];                             \
    return sum;                                                                      \
  }                                                                                  \
  constexpr double NAME##_flop = 2.0 * ACC * (BYTES / sizeof(float));

#if defined(__x86_64__) && defined(__GNUC__)
LIGHTDL_FMA_LOOP(fma_avx512, __attribute__((target("avx512f,fma"))), 64, 16)
LIGHTDL_FMA_LOOP(fma_avx2, __attribute__((target("avx2,fma"))), 32, 12)
#endif
// The baseline (SSE2 on x86-64): no fused multiply-add, a multiply and an add (2 flop a lane).
LIGHTDL_FMA_LOOP(fma_default, , 16, 12)
#undef LIGHTDL_FMA_LOOP

}  // namespace

// Runs `iters` iterations of the loop on each of at::get_num_threads() threads; returns the
// floating-point operations done in all (the caller times the call). `sink` receives a value
// that depends on every accumulator, so the loop cannot be optimised away.
double fma_peak_run(int64_t iters, double* sink) {
  const char* isa = cpu_isa();
  double (*loop)(int64_t, float, float) = fma_default;
  double per_iter = fma_default_flop;
#if defined(__x86_64__) && defined(__GNUC__)
  if (std::strcmp(isa, "avx512") == 0) loop = fma_avx512, per_iter = fma_avx512_flop;
  else if (std::strcmp(isa, "avx2") == 0) loop = fma_avx2, per_iter = fma_avx2_flop;
#endif
  const int64_t threads = at::get_num_threads();
  double total = 0.0;
  at::parallel_for(0, threads, 1, [&](int64_t p0, int64_t p1) {
    double s = 0.0;
    for (int64_t p = p0; p < p1; ++p) s += loop(iters, 0.999f, 1e-3f * float(p + 1));
    if (p0 == 0) total = s;  // one thread's value is enough for the sink
  });
  *sink = total;
  return per_iter * double(iters) * double(threads);
}

}  // namespace cpu
}  // namespace lightdl

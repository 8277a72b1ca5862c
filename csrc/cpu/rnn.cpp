// CPU kernels of one LSTM/GRU time step (csrc/rnn_kernels.h). The row loops are in
// rnn_rows_kernels.h, compiled per instruction set; the math is csrc/rnn_math.h.
//
// Rows (batch entries) are independent. Threads are used only when a step has enough
// elements to pay for waking them: at batch 64 x hidden 32 a step is a couple of microseconds
// of work, comparable to a parallel region's start-up.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "rnn_rows.h"

namespace lightdl {
const char* cpu_isa();         // csrc/cpu/isa.cpp
bool mkl_matches_isa();        // csrc/cpu/isa.cpp

namespace cpu {
namespace {

// Hidden units per parallel task (and the minimum step size for going parallel).
constexpr int64_t kGrain = 16384;

// The instruction set isa.cpp chose (it honours LIGHTDL_CPU_ISA), looked up once: 2 AVX-512,
// 1 AVX2, 0 the baseline.
int isa_level() {
  static const int isa = [] {
    const char* name = cpu_isa();
    return std::strcmp(name, "avx512") == 0 ? 2 : std::strcmp(name, "avx2") == 0 ? 1 : 0;
  }();
  return isa;
}

const RnnRows& rows(bool dbl) {
  switch (isa_level()) {
    case 2: return dbl ? isa_avx512::rnn_rows_f64() : isa_avx512::rnn_rows_f32();
    case 1: return dbl ? isa_avx2::rnn_rows_f64() : isa_avx2::rnn_rows_f32();
    default: return dbl ? isa_default::rnn_rows_f64() : isa_default::rnn_rows_f32();
  }
}

template <typename Step>
void run(void (*fn)(const Step&, int64_t, int64_t), const Step& a) {
  const int64_t per_task = std::max<int64_t>(1, kGrain / std::max<int64_t>(a.H, 1));
  if (a.B <= per_task) {
    fn(a, 0, a.B);
  } else {
    at::parallel_for(0, a.B, per_task, [&](int64_t b0, int64_t b1) { fn(a, b0, b1); });
  }
}

}  // namespace

bool step_gemm_available() {
  if (rows(false).step_gemm == nullptr) return false;
  // Where MKL runs its 512-bit kernels (Intel AVX-512 hosts) ours was never measured against
  // them: those hosts keep MKL.
  if (isa_level() == 2 && mkl_matches_isa()) return false;
  const char* env = std::getenv("LIGHTDL_RNN_CPU_GEMM");
  return env == nullptr || std::strcmp(env, "mkl") != 0;
}

int64_t step_gemm_packed_size(int64_t k, int64_t n) {
  const int64_t P = rows(false).step_gemm_panel;
  return (n + P - 1) / P * P * k;
}

void step_gemm_pack(const float* src, int64_t s_row, int64_t s_col, int64_t k, int64_t n,
                    float* out) {
  const int64_t P = rows(false).step_gemm_panel;
  for (int64_t j0 = 0; j0 < n; j0 += P) {
    // A last panel of at most P / 2 columns is packed half as wide (see step_gemm_kernels.h).
    const int64_t w = n - j0 <= P / 2 ? P / 2 : P;
    for (int64_t i = 0; i < k; ++i, out += w) {
      if (s_col == 1 && j0 + w <= n) {  // a row of a whole panel: contiguous
        std::memcpy(out, src + i * s_row + j0, w * sizeof(float));
        continue;
      }
      for (int64_t j = j0; j < j0 + w; ++j) out[j - j0] = j < n ? src[i * s_row + j * s_col] : 0.f;
    }
  }
}

int64_t step_gemm_row_stride(int64_t n) {
  const int64_t P = rows(false).step_gemm_panel;
  return (n + P - 1) / P * P + 64 / int64_t(sizeof(float));
}

void step_gemm(const StepGemmArgs* parts, int count) {
  if (count == 0 || parts[0].n == 0) return;
  if (parts[0].k0 + parts[0].k1 > 0) return rows(false).step_gemm(parts, count);
  for (int i = 0; i < count; ++i) {
    const StepGemmArgs& a = parts[i];
    if (!a.accumulate)
      for (int64_t r = 0; r < a.m; ++r) std::fill(a.c + r * a.ldc, a.c + r * a.ldc + a.n, 0.f);
  }
}

void step_gemm(const StepGemmArgs& a) { step_gemm(&a, 1); }

// Panels of L = P / 4 hidden units: row k of panel p is [i | f | g | o] of units
// [p L, p L + L) in column k of [W_ih | W_hh], each gate block of L columns (zeros past H).
int64_t lstm_step_packed_size(int64_t k, int64_t H) {
  const int64_t P = rows(false).step_gemm_panel, L = P / 4;
  return (H + L - 1) / L * P * k;
}

void lstm_step_pack(const float* w_ih, const float* w_hh, int64_t I, int64_t H, float* out) {
  const int64_t P = rows(false).step_gemm_panel, L = P / 4, K = I + H;
  // Blocks of kB rows of the panel: row q H + u of the weights is column q L + u - u0, so a
  // block is a transpose of the panel's 4 L weight rows over kB columns, its writes within a
  // few kB. Column by column over the whole panel (stores 4 P bytes apart) one call at hidden
  // 256 (input 32, batch 1, one step) took 176 us, in blocks 94 us.
  constexpr int64_t kB = 16;
  for (int64_t u0 = 0; u0 < H; u0 += L, out += K * P) {
    const int64_t nu = std::min(L, H - u0);
    if (nu < L) std::fill(out, out + K * P, 0.f);  // the columns past H
    for (int64_t k0 = 0; k0 < K; k0 += kB) {
      const int64_t k1 = std::min(K, k0 + kB);
      for (int64_t q = 0; q < 4; ++q)
        for (int64_t j = 0; j < nu; ++j) {
          const int64_t row = q * H + u0 + j;
          float* o = out + q * L + j;
          for (int64_t k = k0; k < std::min(k1, I); ++k) o[k * P] = w_ih[row * I + k];
          for (int64_t k = std::max(k0, I); k < k1; ++k) o[k * P] = w_hh[row * H + k - I];
        }
    }
  }
}

bool lstm_step_available() {
  if (rows(false).lstm_step == nullptr || !step_gemm_available()) return false;
  const char* env = std::getenv("LIGHTDL_LSTM_FUSED_STEP");
  return env == nullptr || std::strcmp(env, "0") != 0;
}

void lstm_step(const LstmStepArgs& a) {
  if (a.m > 0 && a.H > 0) rows(false).lstm_step(a);
}

void lstm_fwd_step(bool dbl, const rnn::LstmFwdStep& a) { run(rows(dbl).lstm_fwd, a); }
void lstm_bwd_step(bool dbl, const rnn::LstmBwdStep& a) { run(rows(dbl).lstm_bwd, a); }
void gru_fwd_step(bool dbl, const rnn::GruFwdStep& a) { run(rows(dbl).gru_fwd, a); }
void gru_bwd_step(bool dbl, const rnn::GruBwdStep& a) { run(rows(dbl).gru_bwd, a); }

}  // namespace cpu
}  // namespace lightdl

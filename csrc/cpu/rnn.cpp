// CPU kernels of one LSTM/GRU time step (csrc/rnn_kernels.h); the math is csrc/rnn_math.h.
//
// Rows (batch entries) are independent; each row's loop over the H hidden units is branch-free
// and auto-vectorises (fastmath.h's exp/tanh). Whether a row is past its sequence end is
// decided once per row, outside the vector loop. Threads are used only when a step has enough
// elements to pay for waking them: at batch 64 x hidden 32 a step is a few microseconds of
// work, comparable to a parallel region's start-up.
#include <ATen/Parallel.h>

#include <algorithm>

#include "../rnn_kernels.h"
#include "../rnn_math.h"

namespace lightdl {
namespace cpu {
namespace {

// Hidden units per parallel task (and the minimum step size for going parallel).
constexpr int64_t kGrain = 16384;

template <typename F>
void for_rows(int64_t B, int64_t H, F&& f) {
  const int64_t rows = std::max<int64_t>(1, kGrain / std::max<int64_t>(H, 1));
  if (B <= rows) {
    f(int64_t(0), B);
  } else {
    at::parallel_for(0, B, rows, f);
  }
}

inline bool active(const int64_t* len, int64_t t, int64_t b) { return len == nullptr || t < len[b]; }

template <typename T>
void lstm_fwd(const rnn::LstmFwdStep& a) {
  const int64_t H = a.H;
  for_rows(a.B, H, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T* __restrict g = static_cast<T*>(a.gates) + b * 4 * H;
      T* __restrict c = static_cast<T*>(a.c) + b * H;
      T* __restrict h = static_cast<T*>(a.h) + b * H;
      T* __restrict y = static_cast<T*>(a.y) + b * H;
      T* __restrict cs = static_cast<T*>(a.cs) + b * H;
      if (active(a.len, a.t, b)) {
        for (int64_t j = 0; j < H; ++j) {
          T i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j], cn, hn;
          rnn_math::lstm_fwd(i, f, gg, o, c[j], cn, hn);
          g[j] = i, g[H + j] = f, g[2 * H + j] = gg, g[3 * H + j] = o;
          c[j] = cn, h[j] = hn, y[j] = hn, cs[j] = cn;
        }
      } else {  // past the end: state kept, output 0; gates still written (defined output)
        for (int64_t j = 0; j < H; ++j) {
          T i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j], cn, hn;
          rnn_math::lstm_fwd(i, f, gg, o, c[j], cn, hn);
          g[j] = i, g[H + j] = f, g[2 * H + j] = gg, g[3 * H + j] = o;
          y[j] = T(0), cs[j] = c[j];
        }
      }
    }
  });
}

template <typename T>
void lstm_bwd(const rnn::LstmBwdStep& a) {
  const int64_t H = a.H;
  for_rows(a.B, H, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T* __restrict dg = static_cast<T*>(a.dgates) + b * 4 * H;
      if (!active(a.len, a.t, b)) {  // dh, dc pass through unchanged
        std::fill(dg, dg + 4 * H, T(0));
        continue;
      }
      const T* __restrict g = static_cast<const T*>(a.gates) + b * 4 * H;
      const T* __restrict c = static_cast<const T*>(a.c) + b * H;
      const T* __restrict cp = static_cast<const T*>(a.c_prev) + b * H;
      const T* __restrict gy = a.gy ? static_cast<const T*>(a.gy) + b * H : nullptr;
      T* __restrict dh = static_cast<T*>(a.dh) + b * H;
      T* __restrict dc = static_cast<T*>(a.dc) + b * H;
      if (gy != nullptr)
        for (int64_t j = 0; j < H; ++j) dh[j] += gy[j];
      for (int64_t j = 0; j < H; ++j) {
        T dcj = dc[j], di, df, dgg, d_o;
        rnn_math::lstm_bwd(g[j], g[H + j], g[2 * H + j], g[3 * H + j], cp[j], c[j], dh[j], dcj, di,
                           df, dgg, d_o);
        dg[j] = di, dg[H + j] = df, dg[2 * H + j] = dgg, dg[3 * H + j] = d_o;
        dc[j] = dcj;
        dh[j] = T(0);  // h_prev reaches h' only through W_hh
      }
    }
  });
}

template <typename T>
void gru_fwd(const rnn::GruFwdStep& a) {
  const int64_t H = a.H;
  for_rows(a.B, H, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const T* __restrict xg = static_cast<const T*>(a.xg) + b * 3 * H;
      const T* __restrict hg = static_cast<const T*>(a.hg) + b * 3 * H;
      T* __restrict h = static_cast<T*>(a.h) + b * H;
      T* __restrict y = static_cast<T*>(a.y) + b * H;
      T* __restrict s = static_cast<T*>(a.saved) + b * 4 * H;
      const bool act = active(a.len, a.t, b);
      for (int64_t j = 0; j < H; ++j) {
        T r, z, n, hn;
        rnn_math::gru_fwd(xg[j], xg[H + j], xg[2 * H + j], hg[j], hg[H + j], hg[2 * H + j], h[j], r,
                          z, n, hn);
        s[j] = r, s[H + j] = z, s[2 * H + j] = n, s[3 * H + j] = hg[2 * H + j];
        // Past the end the state is kept and the output is 0 (a select, still vectorised).
        y[j] = act ? hn : T(0);
        h[j] = act ? hn : h[j];
      }
    }
  });
}

template <typename T>
void gru_bwd(const rnn::GruBwdStep& a) {
  const int64_t H = a.H;
  for_rows(a.B, H, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T* __restrict dx = static_cast<T*>(a.dx) + b * 3 * H;
      T* __restrict dhg = static_cast<T*>(a.dhg) + b * 3 * H;
      if (!active(a.len, a.t, b)) {  // dh passes through unchanged
        std::fill(dx, dx + 3 * H, T(0));
        std::fill(dhg, dhg + 3 * H, T(0));
        continue;
      }
      const T* __restrict s = static_cast<const T*>(a.saved) + b * 4 * H;
      const T* __restrict hp = static_cast<const T*>(a.h_prev) + b * H;
      const T* __restrict gy = a.gy ? static_cast<const T*>(a.gy) + b * H : nullptr;
      T* __restrict dh = static_cast<T*>(a.dh) + b * H;
      if (gy != nullptr)
        for (int64_t j = 0; j < H; ++j) dh[j] += gy[j];
      for (int64_t j = 0; j < H; ++j) {
        T dr, dz, dn, dhn, dhp;
        rnn_math::gru_bwd(s[j], s[H + j], s[2 * H + j], s[3 * H + j], hp[j], dh[j], dr, dz, dn, dhn,
                          dhp);
        dx[j] = dr, dx[H + j] = dz, dx[2 * H + j] = dn;
        dhg[j] = dr, dhg[H + j] = dz, dhg[2 * H + j] = dhn;
        dh[j] = dhp;
      }
    }
  });
}

}  // namespace

void lstm_fwd_step(bool dbl, const rnn::LstmFwdStep& a) {
  dbl ? lstm_fwd<double>(a) : lstm_fwd<float>(a);
}
void lstm_bwd_step(bool dbl, const rnn::LstmBwdStep& a) {
  dbl ? lstm_bwd<double>(a) : lstm_bwd<float>(a);
}
void gru_fwd_step(bool dbl, const rnn::GruFwdStep& a) {
  dbl ? gru_fwd<double>(a) : gru_fwd<float>(a);
}
void gru_bwd_step(bool dbl, const rnn::GruBwdStep& a) {
  dbl ? gru_bwd<double>(a) : gru_bwd<float>(a);
}

}  // namespace cpu
}  // namespace lightdl

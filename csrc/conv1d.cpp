// fused_conv1d and fused_conv1d_backward, device-generic: argument checks, the choice between
// the two paths, autocast. Registered for CPU and CUDA (not as a composite, so the fake kernel
// from Python is the only Meta kernel).
//
// Paths:
// - direct: our own kernels (csrc/cpu/conv1d*.cpp, csrc/cuda/conv1d.cu): the convolution with
//   bias and activation applied in registers, and a direct grad_input / grad_weight(+bias).
// - gemm (CPU, float32/float64): our im2col + MKL GEMM (csrc/cpu/conv1d_gemm.cpp) computing
//   the same biased pre-activation as the vendor path, whose epilogue and act' it shares.
// - vendor: at::convolution with the bias (oneDNN on CPU, cuDNN on GPU, which add it in their
//   own epilogue), then our activation kernel (relu / leaky_relu: ATen's, in place on that
//   output); backward: our activation_backward (act' once),
//   then at::convolution_backward for grad_input, grad_weight and grad_bias. (A first version
//   left the bias out of the convolution and used our bias_act / bias_act_backward around it:
//   measured 3-20% slower than eager on the large-channel shapes, where eager lets oneDNN add
//   the bias and reduce its gradient in passes it makes anyway.)
// The activation derivative is applied once on either path: in the direct backward kernel, to
// the output where grad_from_output (which autograd saves anyway) and otherwise to the
// pre-activation it recomputes in cache (cheaper than writing it forward and reading it back:
// no second buffer is saved), or by activation_backward on the vendor path, which saves the
// biased pre-activation (or uses the output: see grad_from_output).
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/library.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <tuple>

#include "checks.h"
#include "conv1d_direct.h"
#include "conv1d_gemm.h"
#include "conv1d_math.h"

namespace lightdl {
bool mkl_matches_isa();  // csrc/cpu/isa.cpp

namespace {

constexpr const char* kFwd = "fused_conv1d";
constexpr const char* kBwd = "fused_conv1d_backward";

// Mirrors lightdl/ops/_acts.grad_from_output: the backward takes act' from the output, so the
// output is saved and no pre-activation is kept. sigmoid/tanh in float32/float64 (no exp or
// division; a half-type output is too coarse for them); relu, and leaky_relu with a slope >= 0,
// in every dtype (their output is > 0 exactly where the input is), which lets the vendor path
// apply them in place on the convolution's output.
bool grad_from_output(Act a, at::ScalarType dt, double alpha) {
  if (a == Act::ReLU || (a == Act::LeakyReLU && alpha >= 0)) return true;
  return (a == Act::Sigmoid || a == Act::Tanh) && (dt == at::kFloat || dt == at::kDouble);
}

// The dispatch rule, from benchmarks/results/cpu/conv1d.md (see README, "conv1d"): the direct
// kernels win where the reduction per output, C_in * K, is short: oneDNN's direct convolution
// reaches its GEMM rate only for C_in >= 16 or so, and its backward-data pass is slowest
// exactly there (C_in = 1: 7 ms against our < 1 ms). LIGHTDL_CONV1D_PATH=direct|vendor
// overrides the rule (benchmarks, tests). The limits were measured on CPU; the CUDA direct
// kernel has not been timed against cuDNN yet (no GPU so far).
// The limit was raised from 32 to 42 after the register-tile rework: forward+backward, direct / vendor time
// at C_in * K = 40-42 (N = 64, L = 500-1000, C_out = 32): 0.82-0.88 on 1 and 2 threads (one
// exception, C_out = 64 on 2 threads: 1.08); at 48 (C_in = 16, K = 3) 1.16-1.29, at 56
// (C_in = 8, K = 7) 0.88-1.03, at 80 1.5 (measured, 2-core Xeon). On AVX2 (AMD EPYC, both
// paths timed forward and backward, benchmarks/results/cpu-avx2/conv1d.md, after the vector
// relu epilogue): 0.26-0.29 at C_in * K = 7, 0.61-0.67 at 28, 0.97-0.99 at 40, 0.99-1.11 at
// 144 (stride 2), 1.4-2.4 at 160-384: the same limit fits.
constexpr int64_t kDirectMaxReduction = 42;  // C_in * K
// The same limit holds for short series since the weight gradient keeps its partial sums in
// vectors across the batch (csrc/cpu/conv1d_kernels.h): at L = 60 (a 60-beat RR window) and
// C_in * K = 14-42, direct / vendor forward+backward time is 0.61-0.88 at 1 thread and
// 0.50-0.81 at 2, with or without grad_input (before, the limit there was C_in * K <= 8).

// Above the direct limit, short series (CPU, float32/float64) take the GEMM path
// (csrc/cpu/conv1d_gemm.cpp): oneDNN's convolution is far from its GEMM rate on them and its
// backward gains little from a second thread. GEMM / vendor forward+backward time, interleaved
// in one process (AMD EPYC, AVX2; N = 32-64, C_in * K = 144-384), 1 / 2 threads:
//   L_out 15-32: 0.69-0.80 / 0.76-0.80;  L_out 60-64: 0.88-1.06 / 0.79-0.92 (the 1.06: C_in 16,
//   K 9, stride 2, 1 thread);  L_out 120-128: 0.98-1.11 / 0.86-1.01;  L_out 250-512:
//   1.03-1.82 / 1.02-1.52.
// In af_cnn's training step (its 2nd and 3rd convolutions, L_out 30 and 15) the step took
// 6-9% less time on 1 and on 2 threads (interleaved, 400 steps each).
// Where MKL runs narrower kernels than oneDNN (mkl_matches_isa: AMD CPUs with AVX-512) these
// short outputs take the vendor path instead. On an AMD EPYC Zen 5, GEMM / vendor
// forward+backward time at af-c32 and af-c64 (L_out 30 and 15) was 1.56 / 1.48 on 1 thread,
// 1.27 / 1.20 on 2 (benchmarks/results/cpu-amd-avx512/conv1d.md, the gemm and vendor
// columns); with small weights (1792-4608; N 64, L 30-60, C_in 8-32, K 5-9, relu,
// interleaved) the GEMM path took 0.98-1.76x the vendor's on 1 thread, 0.83-1.33x on 2, and
// the direct path 0.94-1.78x / 0.76-1.34x (its limit, kDirectMaxWeights, was measured on long
// outputs only).
constexpr int64_t kGemmMaxLen = 64;

// Above both, on CPU (float32/float64), small weights run direct too: C_out * C_in * K <=
// 5120. There oneDNN's backward is no faster than our register-tiled one (csrc/cpu/
// conv1d_kernels.h: 4 x 3 tiles for grad_weight, 4 channels x 2 vectors for grad_input, act'
// as vector selects) and its forward is slower for long kernels. Forward+backward time
// (relu, all three gradients), direct / the path the rule would pick otherwise, N = 64,
// L = 500-1024, interleaved in one process (AMD EPYC, AVX2), 1 / 2 threads:
//   weights 1408-2560 (C_in 8-16, K 3-11, C_out 16-32, stride 1-2; the c16-s2 is
//     16 x 16 x 9): 0.59-0.96 / 0.55-0.94 (one run);
//   3072-5120 (C_in 16-32, K 3-9, C_out 16-64; three runs): 0.71-0.96 / 0.68-0.91, except
//     C_in 16, K 9, C_out 32 against the direct forward with the vendor backward (below):
//     1.02-1.07 / 0.94-1.00;
//   7168-10240 (C_out 32-64): 0.96-1.21 / 0.80-1.13;  24576-49152 (C_out 128): 1.12-1.39 /
//     1.15-1.46.
// (The c16-s2 backward alone took 1.4-1.6x the vendor's before those tiles.)
constexpr int64_t kDirectMaxWeights = 5120;

// AMD CPUs with AVX-512 (mkl_matches_isa false): long outputs run direct up to 64 input
// channels at any weight size. There the AVX-512 kernels work in larger tiles (pairs of
// forward tiles, 4 x 4 grad_input tiles, grad_weight in GEMM form from 64 output channels:
// csrc/cpu/conv1d_kernels.h). Forward+backward time, direct / vendor (relu, all gradients,
// AMD EPYC Zen 5, interleaved in one process), 1 / 2 threads:
//   L_out 200-500, C_in 16-64, C_out 64-128 (weights 5120-40960): 0.78-0.92 / 0.72-0.88,
//     except 64 x 64 x 200 -> 64, K 5: 1.04 / 0.99; the c32 0.78 / 0.73, c64 0.90 / 0.84;
//   L_out 80-128: C_in 64 1.01-1.05 / 0.92-0.97; C_in 128 1.11-1.17 / 1.07-1.23 (c128-dil2);
//   C_in 128, L_out 250: 1.02 / 0.96.
// Intel's AVX-512 hosts keep kDirectMaxWeights: not measured there.
constexpr int64_t kWideDirectMinLen = 200;
constexpr int64_t kWideDirectMaxIn = 64;

// On CUDA, short outputs run direct above the direct limit too: there the work is small and
// cuDNN's calls cost more than our kernels. Direct / vendor time, H100, float32 without TF32,
// median of 30 interleaved rounds (benchmarks/results/cuda/conv1d.md), forward and
// forward+backward: af-c32 (64x32x30 -> 64, K 5, C_in * K 160) 0.73 / 0.70, af-c64 (64x64x15
// -> 64, K 3, 192) 0.74 / 0.79; at long outputs cuDNN wins: c16-s2 (L_out 512, 144) 1.28 /
// 1.23, c32 (L_out 500, 160) 2.7 / 3.4. Bounded by the largest reduction measured.
constexpr int64_t kCudaDirectMaxLen = 64;
constexpr int64_t kCudaDirectMaxReduction = 192;

enum class Path { Direct, Vendor, Gemm };

// oneDNN's CPU forward is slow for long kernels: K >= 9 took 2.5-4x the time of K = 7 on the
// same channels. There our direct forward wins even far above the direct limit, while above
// kDirectMaxWeights its backward loses, so (rule's choice only, CPU, the vendor path, C_out <=
// 32, K >= 9)
// the forward runs direct and the backward stays on the vendor's, which needs no
// pre-activation where act' comes from the output. Direct / vendor forward time, N = 32,
// L = 512-1024, C_in 8-64, stride 1-2, interleaved in one process (AMD EPYC, AVX2), 1 / 2
// threads: K = 9-11, C_out 16-32: 0.41-0.86 / 0.38-0.97; C_out 128: 0.72-1.13 / 0.80-1.24
// (excluded); K = 7: 0.86-2.04 / 0.89-1.97; K = 3-5: 1.10-2.88 / 0.82-2.37.
constexpr int64_t kDirectForwardMinK = 9;
constexpr int64_t kDirectForwardMaxOut = 32;

// AMD CPUs with AVX-512 (mkl_matches_isa false), float32/float64: the same split for K <= 3
// on the outputs the wide direct rule leaves to the vendor (65 to 199 long, or more than 64
// input channels). There our forward (pairs of 4-channel tiles) beats oneDNN's while its
// backward does not. Direct / vendor forward time (relu, N = 32, C_in 64-256, C_out 32-256,
// L_out 64-128, dilation 1-2, AMD EPYC Zen 5, interleaved in one process), 1 / 2 threads:
// K = 3: 0.82-0.91 / 0.73-0.88 (the c128-dil2: 0.90 / 0.88); K = 5-7: 0.91-1.11 /
// 0.77-1.04 (excluded); C_in 128-256 at L_out 250-500, K = 3: 0.94-1.04 / 0.89-1.01
// (excluded).
constexpr int64_t kWideForwardMaxK = 3;
// And on the short outputs those hosts leave to the vendor (L_out <= kGemmMaxLen), from 28
// positions at any K: our forward tiles are two 16-float vectors long, so below that their
// time stays flat while oneDNN's falls. Direct / vendor forward time (relu, N = 64, C_in
// 16-128, C_out 32-128, K 3-9, same host and method), 1 / 2 threads: L_out 28-64:
// 0.70-0.91 / 0.59-0.83 (the af-c32 shape, L_out 30: 0.80 / 0.69); L_out 24: 0.93-1.08 /
// 0.73-0.95; L_out 15-20: 0.84-1.59 / 0.84-1.37 (af-c64, L_out 15: 1.37 / 1.10).
constexpr int64_t kShortForwardMinLen = 28;
// Rows of one float32 vector (14-16 positions: af-c64, L_out 15) after the one-vector tiles
// (kShortRows, csrc/cpu/conv1d_kernels.h), up to 64 input channels. Direct / vendor forward
// time (N = 64; C_in 32-64, C_out 64, K 3-5), 1 / 2 threads: L_out 14-16 0.80-0.95 / 0.61-0.76;
// L_out 9-12 1.00-1.15 / 0.74-0.88 and 17-20 1.12-1.24 / 0.85-0.99 (excluded); C_in 128,
// C_out 128: L_out 14-16 0.96-1.10 / 0.86-0.94 (excluded).
constexpr int64_t kOneVectorMinLen = 14;
constexpr int64_t kOneVectorMaxLen = 16;
constexpr int64_t kOneVectorMaxIn = 64;

// LIGHTDL_CONV1D_PATH=direct|gemm|vendor (benchmarks, tests), read on every call; a forced
// "gemm" where the GEMM path does not apply runs the vendor path.
std::optional<Path> forced_path(bool gemm_ok) {
  const char* env = std::getenv("LIGHTDL_CONV1D_PATH");
  if (env == nullptr) return std::nullopt;
  if (std::strcmp(env, "direct") == 0) return Path::Direct;
  if (std::strcmp(env, "vendor") == 0) return Path::Vendor;
  if (std::strcmp(env, "gemm") == 0) return gemm_ok ? Path::Gemm : Path::Vendor;
  return std::nullopt;
}

// `forward`: the forward op's choice, which may run the direct forward ahead of the vendor
// backward (see kDirectForwardMinK); `want_pre`: the forward must return the pre-activation.
Path choose_path(const at::Tensor& x, const at::Tensor& w, int64_t groups, int64_t Lo,
                 bool forward = false, bool want_pre = true) {
  if (groups != 1) return Path::Vendor;  // the direct and GEMM paths are groups == 1 only
  // The GEMM path runs at::mm in the input's dtype: CPU float32 / float64 only.
  const bool gemm_ok = !x.is_cuda() &&
                       (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble);
  if (const std::optional<Path> forced = forced_path(gemm_ok)) return *forced;
  const int64_t reduction = w.size(1) * w.size(2);
  if (reduction <= kDirectMaxReduction) return Path::Direct;
  if (x.is_cuda() && Lo <= kCudaDirectMaxLen && reduction <= kCudaDirectMaxReduction)
    return Path::Direct;
  // The forward-only direct choices below read act' from the output in the vendor backward.
  const bool split_ok = forward && !want_pre && gemm_ok && !mkl_matches_isa();
  if (gemm_ok && Lo <= kGemmMaxLen) {
    if (mkl_matches_isa()) return Path::Gemm;
    const bool one_vector = Lo >= kOneVectorMinLen && Lo <= kOneVectorMaxLen &&
                            w.size(1) <= kOneVectorMaxIn;
    return split_ok && (Lo >= kShortForwardMinLen || one_vector) ? Path::Direct : Path::Vendor;
  }
  if (gemm_ok && w.numel() <= kDirectMaxWeights) return Path::Direct;
  if (gemm_ok && !mkl_matches_isa() && Lo >= kWideDirectMinLen && w.size(1) <= kWideDirectMaxIn)
    return Path::Direct;
  if (forward && !want_pre && !x.is_cuda() && w.size(2) >= kDirectForwardMinK &&
      w.size(0) <= kDirectForwardMaxOut)
    return Path::Direct;  // the forward only
  if (split_ok && w.size(2) <= kWideForwardMaxK && Lo < kWideDirectMinLen)
    return Path::Direct;  // the forward only
  return Path::Vendor;
}

// Whether some kernel tap k reads only padding at every output position l, i.e. no l in
// [0, Lo) has 0 <= l * stride - padding + k * dilation < L.
bool has_padding_only_tap(int64_t L, int64_t K, int64_t stride, int64_t padding,
                          int64_t dilation) {
  const int64_t Lo = conv1d_out_len(L, K, stride, padding, dilation);
  for (int64_t k = 0; k < K; ++k) {
    bool touches = false;
    for (int64_t l = 0; l < Lo && !touches; ++l) {
      const int64_t i = l * stride - padding + k * dilation;
      touches = i >= 0 && i < L;
    }
    if (!touches) return true;
  }
  return false;
}

void check_args(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& bias,
                int64_t stride, int64_t padding, int64_t dilation, int64_t groups,
                const char* op) {
  check_float_tensor(x, op, "x");
  check_float_tensor(w, op, "weight");
  TORCH_CHECK_VALUE(x.dim() == 3, op, ": `x` must have shape (N, C_in, L), got ", x.sizes());
  TORCH_CHECK_VALUE(w.dim() == 3, op, ": `weight` must have shape (C_out, C_in / groups, K), got ",
                    w.sizes());
  TORCH_CHECK_VALUE(stride >= 1, op, ": `stride` must be >= 1, got ", stride);
  TORCH_CHECK_VALUE(padding >= 0, op, ": `padding` must be >= 0, got ", padding);
  TORCH_CHECK_VALUE(dilation >= 1, op, ": `dilation` must be >= 1, got ", dilation);
  TORCH_CHECK_VALUE(groups >= 1, op, ": `groups` must be >= 1, got ", groups);
  TORCH_CHECK_VALUE(x.size(1) % groups == 0 && w.size(0) % groups == 0, op,
                    ": C_in (", x.size(1), ") and C_out (", w.size(0),
                    ") must be divisible by groups (", groups, ")");
  TORCH_CHECK_VALUE(w.size(1) * groups == x.size(1), op, ": `weight` has ", w.size(1),
                    " input channels per group, but `x` has ", x.size(1), " channels and groups=",
                    groups, " (expected weight.shape[1] == ", x.size(1) / groups, ")");
  TORCH_CHECK_VALUE(w.size(0) >= 1 && w.size(2) >= 1, op, ": `weight` must have C_out >= 1 and K >= 1, got ",
                    w.sizes());
  TORCH_CHECK_TYPE(w.scalar_type() == x.scalar_type(), op, ": `weight` dtype ", w.scalar_type(),
                   " differs from `x` dtype ", x.scalar_type());
  TORCH_CHECK_VALUE(w.device() == x.device(), op, ": `weight` is on ", w.device(),
                    " but `x` is on ", x.device());
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK_VALUE(bias->dim() == 1 && bias->size(0) == w.size(0), op,
                      ": `bias` must have shape (", w.size(0), ",), got ", bias->sizes());
    TORCH_CHECK_TYPE(bias->scalar_type() == x.scalar_type(), op, ": `bias` dtype ",
                     bias->scalar_type(), " differs from `x` dtype ", x.scalar_type());
    TORCH_CHECK_VALUE(bias->device() == x.device(), op, ": `bias` is on ", bias->device(),
                      " but `x` is on ", x.device());
  }
  const int64_t span = dilation * (w.size(2) - 1) + 1;
  TORCH_CHECK_VALUE(x.size(2) + 2 * padding >= span, op, ": input too short: length ", x.size(2),
                    " + 2 * padding ", padding, " < dilated kernel size ", span);
}

const auto& act_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("lightdl::activation", "")
                       .typed<at::Tensor(const at::Tensor&, c10::string_view, double)>();
  return op;
}
const auto& act_backward_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("lightdl::activation_backward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, c10::string_view,
                                         double, bool)>();
  return op;
}

std::tuple<at::Tensor, at::Tensor> fused_conv1d(const at::Tensor& x_in, const at::Tensor& weight,
                                                const std::optional<at::Tensor>& bias,
                                                int64_t stride, int64_t padding, int64_t dilation,
                                                int64_t groups, c10::string_view act,
                                                double alpha) {
  check_args(x_in, weight, bias, stride, padding, dilation, groups, kFwd);
  const Act a = parse_act(std::string(act));
  const bool has_bias = bias.has_value() && bias->defined();
  const bool want_pre = a != Act::Identity && !grad_from_output(a, x_in.scalar_type(), alpha);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor w = weight.contiguous();
  const at::Tensor b = has_bias ? bias->contiguous() : at::Tensor();
  const Conv1dArgs args{stride, padding, dilation};
  const Path path =
      choose_path(x, w, groups, conv1d_out_len(x.size(2), w.size(2), stride, padding, dilation),
                  /*forward=*/true, want_pre);
  if (path == Path::Direct) {
    // The direct backward recomputes the pre-activation (or reads the output): no second
    // output to save.
    at::Tensor out;
    if (x.is_cuda()) {
#ifdef LIGHTDL_WITH_CUDA
      out = cuda::conv1d_direct_forward(x, w, b, args, a, alpha);
#else
      TORCH_CHECK(false, kFwd, ": built without CUDA");
#endif
    } else {
      out = cpu::conv1d_direct_forward(x, w, b, args, a, alpha);
    }
    return {out, at::empty({0}, x.options())};
  }
  // Vendor: the bias goes into the convolution (oneDNN/cuDNN add it in their own epilogue, as
  // eager does), our activation kernel follows; `saved` is the biased pre-activation. The
  // GEMM path computes the same biased pre-activation, then shares the epilogue.
  at::Tensor pre =
      path == Path::Gemm
          ? cpu::conv1d_gemm_forward(x, w, b, args)
          : at::convolution(x, w, has_bias ? std::optional<at::Tensor>(b) : std::nullopt,
                            {stride}, {padding}, {dilation}, false, {0}, groups);
  if (a == Act::Identity) return {pre, at::empty({0}, x.options())};
  // relu / leaky_relu: in place on the convolution's fresh output (the backward reads the
  // output), so no second buffer is allocated and written: eager's conv1d + relu writes two.
  if (a == Act::ReLU) return {at::relu_(pre), at::empty({0}, x.options())};
  if (a == Act::LeakyReLU && alpha >= 0)
    return {at::leaky_relu_(pre, alpha), at::empty({0}, x.options())};
  at::Tensor out = act_op().call(pre, act, alpha);
  return {out, want_pre ? pre : at::empty({0}, x.options())};
}

// `saved`: the op's second output, or its first when grad_from_output(act, dtype); unused for
// identity. Gradients not asked for in output_mask (and grad_bias without a bias) come back as
// empty tensors.
std::tuple<at::Tensor, at::Tensor, at::Tensor> fused_conv1d_backward(
    const at::Tensor& grad, const at::Tensor& x_in, const at::Tensor& weight,
    const std::optional<at::Tensor>& bias, const at::Tensor& saved, int64_t stride,
    int64_t padding, int64_t dilation, int64_t groups, c10::string_view act, double alpha,
    std::array<bool, 3> output_mask) {
  check_args(x_in, weight, bias, stride, padding, dilation, groups, kBwd);
  const Act a = parse_act(std::string(act));
  const bool has_bias = bias.has_value() && bias->defined();
  const int64_t Lo = conv1d_out_len(x_in.size(2), weight.size(2), stride, padding, dilation);
  const std::vector<int64_t> out_shape{x_in.size(0), weight.size(0), Lo};
  TORCH_CHECK_VALUE(grad.sizes() == c10::IntArrayRef(out_shape), kBwd, ": `grad` must have shape ",
                    c10::IntArrayRef(out_shape), ", got ", grad.sizes());
  TORCH_CHECK_TYPE(grad.scalar_type() == x_in.scalar_type(), kBwd, ": `grad` dtype ",
                   grad.scalar_type(), " differs from `x` dtype ", x_in.scalar_type());
  const bool from_output = grad_from_output(a, x_in.scalar_type(), alpha);
  TORCH_CHECK_VALUE(saved.numel() == 0 || saved.sizes() == c10::IntArrayRef(out_shape), kBwd,
                    ": `saved` must be empty or have shape ", c10::IntArrayRef(out_shape), ", got ",
                    saved.sizes());
  const at::Tensor x = x_in.contiguous();
  const at::Tensor w = weight.contiguous();
  const bool need_b = has_bias && output_mask[2];

  Path path = choose_path(x, w, groups, Lo);
  // The vendor and GEMM paths need the pre-activation or the output; the direct one
  // recomputes the pre-activation (and is what ran forward when nothing was saved, e.g.
  // LIGHTDL_CONV1D_PATH changed in between, or a torch.compile cache entry traced under the
  // other path).
  if (path != Path::Direct && groups == 1 && a != Act::Identity && saved.numel() == 0)
    path = Path::Direct;
  at::Tensor gx, gw, gb;
  if (path == Path::Direct) {
    const Conv1dArgs args{stride, padding, dilation};
    const at::Tensor b = has_bias ? bias->contiguous() : at::Tensor();
    // The forward's output, when act' can be read from it (the kernels may then skip
    // recomputing the pre-activation).
    const at::Tensor out_saved = from_output ? saved : at::Tensor();
    if (x.is_cuda()) {
#ifdef LIGHTDL_WITH_CUDA
      std::tie(gx, gw, gb) = cuda::conv1d_direct_backward(grad, x, w, b, out_saved, args, a, alpha, output_mask);
#else
      TORCH_CHECK(false, kBwd, ": built without CUDA");
#endif
    } else {
      std::tie(gx, gw, gb) = cpu::conv1d_direct_backward(grad, x, w, b, out_saved, args, a, alpha, output_mask);
    }
  } else {
    // act' applied once (from the saved biased pre-activation, or the output), then the
    // vendor's backward, which also reduces grad_bias in its weight pass, as eager does.
    const at::Tensor gz = a == Act::Identity
                              ? grad.contiguous()
                              : act_backward_op().call(grad, saved, act, alpha, from_output);
    if (path == Path::Gemm) {
      std::tie(gx, gw, gb) = cpu::conv1d_gemm_backward(
          gz, x, w, Conv1dArgs{stride, padding, dilation}, {output_mask[0], output_mask[1], need_b});
    } else if (output_mask[0] || output_mask[1] || need_b) {
      // oneDNN's bfloat16/float16 backward leaves garbage (inf, NaN, 1e37) in the weight
      // gradient of taps that only ever meet padding (eager PyTorch has the same bug,
      // torch 2.13): for those geometries the CPU backward runs in float32.
      const bool widen = !x.is_cuda() && (x.scalar_type() == at::kHalf ||
                                          x.scalar_type() == at::kBFloat16) &&
                         has_padding_only_tap(x.size(2), w.size(2), stride, padding, dilation);
      const auto wide = [&](const at::Tensor& t) { return widen ? t.to(at::kFloat) : t; };
      const std::optional<c10::IntArrayRef> bias_sizes =
          need_b ? std::optional<c10::IntArrayRef>(bias->sizes()) : std::nullopt;
      auto r = at::convolution_backward(wide(gz), wide(x), wide(w), bias_sizes, {stride},
                                        {padding}, {dilation}, false, {0}, groups,
                                        {output_mask[0], output_mask[1], need_b});
      const auto narrow = [&](const at::Tensor& t) {
        return widen && t.defined() ? t.to(x.scalar_type()) : t;
      };
      gx = narrow(std::get<0>(r));
      gw = narrow(std::get<1>(r));
      gb = narrow(std::get<2>(r));
    }
  }
  const auto empty = [&] { return at::empty({0}, x.options()); };
  return {output_mask[0] ? gx : empty(), output_mask[1] ? gw : empty(),
          need_b ? gb : empty()};
}

// Autocast like F.conv1d: floating inputs cast to the autocast dtype (CPU bfloat16, CUDA
// float16 by default), through the dispatcher so the Python autograd formula still applies.
template <c10::DeviceType DT>
std::tuple<at::Tensor, at::Tensor> fused_conv1d_autocast(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    int64_t stride, int64_t padding, int64_t dilation, int64_t groups, c10::string_view act,
    double alpha) {
  c10::impl::ExcludeDispatchKeyGuard guard(at::autocast::get_autocast_dispatch_key_from_device_type(DT));
  const auto dtype = at::autocast::get_lower_precision_fp_from_device_type(DT);
  std::optional<at::Tensor> b;
  if (bias.has_value() && bias->defined()) b = at::autocast::cached_cast(dtype, *bias, DT);
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("lightdl::fused_conv1d", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                           int64_t, int64_t, int64_t, int64_t, c10::string_view, double)>();
  return op.call(at::autocast::cached_cast(dtype, x, DT),
                 at::autocast::cached_cast(dtype, weight, DT), b, stride, padding, dilation,
                 groups, act, alpha);
}

}  // namespace
}  // namespace lightdl

TORCH_LIBRARY_IMPL(lightdl, CPU, m) {
  m.impl("fused_conv1d", &lightdl::fused_conv1d);
  m.impl("fused_conv1d_backward", &lightdl::fused_conv1d_backward);
}
TORCH_LIBRARY_IMPL(lightdl, CUDA, m) {
  m.impl("fused_conv1d", &lightdl::fused_conv1d);
  m.impl("fused_conv1d_backward", &lightdl::fused_conv1d_backward);
}
TORCH_LIBRARY_IMPL(lightdl, AutocastCPU, m) {
  m.impl("fused_conv1d", &lightdl::fused_conv1d_autocast<c10::DeviceType::CPU>);
}
TORCH_LIBRARY_IMPL(lightdl, AutocastCUDA, m) {
  m.impl("fused_conv1d", &lightdl::fused_conv1d_autocast<c10::DeviceType::CUDA>);
}

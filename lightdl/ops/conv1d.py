"""`fused_conv1d(x, weight, bias, stride, padding, dilation, groups, act)` =
act(F.conv1d(x, weight, bias, stride, padding, dilation, groups)).

The compiled op (csrc/conv1d.cpp) picks one of two paths by a measured rule: our direct
kernels (short reductions C_in * K, e.g. one-channel signals: bias and activation applied in
registers, direct grad_input and grad_weight), or the vendor convolution (oneDNN / cuDNN,
bias included) followed by our activation kernel. The backward applies the activation
derivative once and computes grad_input, grad_weight and grad_bias on the same path. The op
returns the biased pre-activation as a second output where the backward needs it (empty
otherwise: the direct backward recomputes it).

"same" / "valid" padding are resolved here to integers; an odd total "same" padding puts the
extra zero on the right, as F.conv1d does (one F.pad of the input, differentiable).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from lightdl.ops import _backend
from lightdl.ops._acts import apply_reference, check_act, grad_from_output
from lightdl.ops._autograd import call, register_autograd
from lightdl.ops._checks import check_float, check_int, check_like, check_tensor

_OP = "fused_conv1d"


def fused_conv1d_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int | str = 0,
    dilation: int = 1,
    groups: int = 1,
    act: str = "identity",
    alpha: float = 0.01,
) -> torch.Tensor:
    """Pure-PyTorch `act(F.conv1d(x, weight, bias, stride, padding, dilation, groups))`."""
    return apply_reference(F.conv1d(x, weight, bias, stride, padding, dilation, groups), act, alpha)


def resolve_padding(padding: int | str | tuple, kernel_size: int, stride: int,
                    dilation: int) -> tuple[int, int]:
    """(left, extra_right): symmetric padding `left` on both sides plus `extra_right` more
    zeros on the right (only for "same" with an odd total, as F.conv1d pads)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same":
            if stride != 1:
                raise ValueError(f"{_OP}: padding='same' is not supported for strided "
                                 f"convolutions (stride={stride}), as in F.conv1d")
            total = dilation * (kernel_size - 1)
            return total // 2, total - 2 * (total // 2)
        raise ValueError(f"{_OP}: `padding` must be an int, 'same' or 'valid', got {padding!r}")
    return check_int(padding, "padding", _OP, 0), 0


def _check(x, weight, bias, stride, padding, dilation, groups, act, alpha):
    check_tensor(x, "x", _OP)
    check_tensor(weight, "weight", _OP)
    if x.dim() not in (2, 3):
        raise ValueError(f"{_OP}: `x` must have shape (N, C_in, L) or (C_in, L), got "
                         f"{tuple(x.shape)}")
    if weight.dim() != 3:
        raise ValueError(f"{_OP}: `weight` must have shape (C_out, C_in / groups, K), got "
                         f"{tuple(weight.shape)}")
    check_like(weight, x, "weight", "x", _OP)
    stride = check_int(stride, "stride", _OP, 1)
    dilation = check_int(dilation, "dilation", _OP, 1)
    groups = check_int(groups, "groups", _OP, 1)
    c_in, c_out, k = x.shape[-2], weight.shape[0], weight.shape[2]
    if c_in % groups or c_out % groups:
        raise ValueError(f"{_OP}: C_in ({c_in}) and C_out ({c_out}) must be divisible by "
                         f"groups ({groups})")
    if weight.shape[1] * groups != c_in:
        raise ValueError(f"{_OP}: `weight` has {weight.shape[1]} input channels per group but "
                         f"`x` has {c_in} channels and groups={groups} (expected "
                         f"weight.shape[1] == {c_in // groups})")
    if bias is not None:
        check_tensor(bias, "bias", _OP)
        if bias.dim() != 1 or bias.shape[0] != c_out:
            raise ValueError(f"{_OP}: `bias` must have shape ({c_out},), got {tuple(bias.shape)}")
        check_like(bias, x, "bias", "x", _OP)
    check_act(act, _OP)
    alpha = check_float(alpha, "alpha", _OP)
    left, extra = resolve_padding(padding, k, stride, dilation)
    span = dilation * (k - 1) + 1
    if x.shape[-1] + 2 * left + extra < span:
        raise ValueError(f"{_OP}: input too short: length {x.shape[-1]} with padding "
                         f"{padding!r} is shorter than the dilated kernel size {span}")
    return stride, left, extra, dilation, groups, alpha


def fused_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int | str = 0,
    dilation: int = 1,
    groups: int = 1,
    act: str = "identity",
    alpha: float = 0.01,
) -> torch.Tensor:
    """`act(F.conv1d(x, weight, bias, stride, padding, dilation, groups))`.

    Args:
        x: (N, C_in, L) or unbatched (C_in, L).
        weight: (C_out, C_in / groups, K).
        bias: (C_out,) or None.
        stride, dilation, groups: ints >= 1; padding: int >= 0, "same" (stride 1 only) or
            "valid", as in F.conv1d.
        act: one of lightdl.ops.ACTIVATIONS; alpha: leaky_relu's negative slope.
    Returns:
        (N, C_out, L_out) (or (C_out, L_out)), L_out = (L + 2p - dilation (K - 1) - 1) // stride + 1.
    """
    stride, left, extra, dilation, groups, alpha = _check(
        x, weight, bias, stride, padding, dilation, groups, act, alpha)
    if not _backend.use_native(x):
        return fused_conv1d_reference(x, weight, bias, stride, padding, dilation, groups, act,
                                      alpha)
    unbatched = x.dim() == 2
    if unbatched:
        x = x.unsqueeze(0)
    if extra:
        x = F.pad(x, (0, extra))
    out = call(torch.ops.lightdl.fused_conv1d, x, weight, bias, stride, left, dilation, groups,
               act, alpha)[0]
    return out.squeeze(0) if unbatched else out


# The path rule of csrc/conv1d.cpp (choose_path), mirrored for the fake kernel (the direct path
# saves no pre-activation: its backward recomputes it, so the op's second output is empty) and
# for the benchmarks' "native" label.
DIRECT_MAX_REDUCTION = 42  # C_in * K, at any length
GEMM_MAX_LEN = 64  # output length, above DIRECT_MAX_REDUCTION, CPU float32/float64
DIRECT_MAX_WEIGHTS = 5120  # C_out * C_in * K, longer outputs, CPU float32/float64
WIDE_DIRECT_MIN_LEN, WIDE_DIRECT_MAX_IN = 200, 64  # AMD AVX-512 CPUs, float32/float64
DIRECT_FORWARD_MIN_K, DIRECT_FORWARD_MAX_OUT = 9, 32  # vendor backward, direct forward (CPU)
# Vendor backward, direct forward (AMD AVX-512): K <= 3 at 64 < L_out < 200; any K at
# SHORT_FORWARD_MIN_LEN <= L_out <= GEMM_MAX_LEN, and at ONE_VECTOR_LEN up to
# ONE_VECTOR_MAX_IN input channels.
WIDE_FORWARD_MAX_K, SHORT_FORWARD_MIN_LEN = 3, 28
ONE_VECTOR_LEN, ONE_VECTOR_MAX_IN = range(14, 17), 64
CUDA_DIRECT_MAX_LEN, CUDA_DIRECT_MAX_REDUCTION = 64, 192  # short outputs run direct on CUDA
PATHS = ("direct", "gemm", "vendor")


def gemm_path_wanted() -> bool:
    """Whether short outputs take the GEMM path: not where MKL runs narrower kernels than the
    vendor convolution (AMD CPUs with AVX-512; csrc/cpu/isa.cpp, mkl_matches_isa), where they
    take the vendor's."""
    return _backend._C is None or _backend._C.mkl_matches_isa()


def uses_direct_path(c_in: int, kernel_size: int, groups: int, out_len: int | None = None,
                     device: str | torch.device = "cpu", c_out: int | None = None,
                     dtype: torch.dtype | None = None) -> bool:
    """Whether fused_conv1d runs our direct kernels (else the GEMM path or the vendor
    convolution, both + our epilogue). On CUDA, outputs up to CUDA_DIRECT_MAX_LEN long run
    direct up to a reduction C_in * K of CUDA_DIRECT_MAX_REDUCTION (out_len None: not). On
    CPU in float32/float64 (dtype None: not), outputs longer than GEMM_MAX_LEN run direct
    while the weight has at most DIRECT_MAX_WEIGHTS elements (c_out None: not), and on AMD
    CPUs with AVX-512 (not gemm_path_wanted()) outputs of WIDE_DIRECT_MIN_LEN or more with up
    to WIDE_DIRECT_MAX_IN input channels at any weight size."""
    if groups != 1:
        return False
    forced = os.environ.get("LIGHTDL_CONV1D_PATH")
    if forced in PATHS:
        return forced == "direct"
    reduction = c_in * kernel_size
    if reduction <= DIRECT_MAX_REDUCTION:
        return True
    if torch.device(device).type == "cuda":
        return (out_len is not None and out_len <= CUDA_DIRECT_MAX_LEN
                and reduction <= CUDA_DIRECT_MAX_REDUCTION)
    if out_len is None or out_len <= GEMM_MAX_LEN or dtype not in (torch.float32, torch.float64):
        return False
    if c_out is not None and c_out * reduction <= DIRECT_MAX_WEIGHTS:
        return True
    return (out_len >= WIDE_DIRECT_MIN_LEN and c_in <= WIDE_DIRECT_MAX_IN
            and not gemm_path_wanted())


def conv1d_path(c_in: int, kernel_size: int, out_len: int, groups: int = 1,
                dtype: torch.dtype = torch.float32, device: str = "cpu", c_out: int | None = None,
                act: str = "identity", alpha: float = 0.01) -> str:
    """The path fused_conv1d takes: "direct" (our kernels; see uses_direct_path), "gemm"
    (im2col + MKL GEMM, CPU float32/float64, short outputs, where gemm_path_wanted()),
    "vendor" (oneDNN / cuDNN convolution), or "direct/vendor": the direct forward and the
    vendor's backward (CPU, K >= 9, C_out <= 32, where oneDNN's forward is slow, when c_out is
    given; and AMD AVX-512 CPUs, float32/float64: outputs of SHORT_FORWARD_MIN_LEN to
    GEMM_MAX_LEN or ONE_VECTOR_LEN long (C_in <= ONE_VECTOR_MAX_IN there), and K <= 3 up
    to WIDE_DIRECT_MIN_LEN), only for activations whose derivative comes from the output,
    or identity."""
    if uses_direct_path(c_in, kernel_size, groups, out_len, device, c_out, dtype):
        return "direct"
    cpu = torch.device(device).type == "cpu"
    gemm_ok = groups == 1 and cpu and dtype in (torch.float32, torch.float64)
    forced = os.environ.get("LIGHTDL_CONV1D_PATH")
    if forced in PATHS:
        return "gemm" if forced == "gemm" and gemm_ok else "vendor"
    from_output = act == "identity" or grad_from_output(act, dtype, alpha)
    if gemm_ok and out_len <= GEMM_MAX_LEN:
        if gemm_path_wanted():
            return "gemm"
        fast = out_len >= SHORT_FORWARD_MIN_LEN or (out_len in ONE_VECTOR_LEN
                                                    and c_in <= ONE_VECTOR_MAX_IN)
        return "direct/vendor" if from_output and fast else "vendor"
    if (groups == 1 and cpu and c_out is not None and kernel_size >= DIRECT_FORWARD_MIN_K
            and c_out <= DIRECT_FORWARD_MAX_OUT and from_output):
        return "direct/vendor"
    if (gemm_ok and not gemm_path_wanted() and kernel_size <= WIDE_FORWARD_MAX_K
            and out_len < WIDE_DIRECT_MIN_LEN and from_output):
        return "direct/vendor"
    return "vendor"


def _register() -> None:
    lib = torch.ops.lightdl

    def _out_len(x, weight, stride, padding, dilation):
        return (x.shape[2] + 2 * padding - dilation * (weight.shape[2] - 1) - 1) // stride + 1

    @torch.library.register_fake("lightdl::fused_conv1d")
    def _(x, weight, bias, stride=1, padding=0, dilation=1, groups=1, act="identity",
          alpha=0.01):
        shape = (x.shape[0], weight.shape[0], _out_len(x, weight, stride, padding, dilation))
        out = x.new_empty(shape)
        none_needed = (act == "identity" or grad_from_output(act, x.dtype, alpha)
                       or uses_direct_path(x.shape[1], weight.shape[2], groups, shape[2],
                                           x.device, weight.shape[0], x.dtype))
        return out, (x.new_empty((0,)) if none_needed else x.new_empty(shape))

    @torch.library.register_fake("lightdl::fused_conv1d_backward")
    def _(grad, x, weight, bias, saved, stride, padding, dilation, groups, act, alpha,
          output_mask):
        gx = torch.empty_like(x, memory_format=torch.contiguous_format) if output_mask[0] \
            else x.new_empty((0,))
        gw = torch.empty_like(weight, memory_format=torch.contiguous_format) if output_mask[1] \
            else x.new_empty((0,))
        gb = x.new_empty((weight.shape[0],)) if output_mask[2] and bias is not None \
            else x.new_empty((0,))
        return gx, gw, gb

    def _setup(ctx, inputs, output):
        # Trailing arguments left at their schema defaults may be missing from `inputs`.
        defaults = (None, 1, 0, 1, 1, "identity", 0.01)
        x, weight, bias, stride, padding, dilation, groups, act, alpha = (
            *inputs, *defaults[len(inputs) - 2:])
        # The output where act' can be read from it (grad_from_output): the vendor backward
        # needs it, and the CPU direct backward then skips recomputing the pre-activation
        # (signal shape, relu: 1.14x faster backward; sigmoid 1.8x). Elsewhere the direct
        # backward recomputes (the CUDA kernel; half types, whose output would need a
        # converting pass), and the empty second output is kept instead: holding on to the
        # output would keep it alive for nothing.
        direct = uses_direct_path(x.shape[1], weight.shape[2], groups,
                                  _out_len(x, weight, stride, padding, dilation), x.device,
                                  weight.shape[0], x.dtype)
        from_output = grad_from_output(act, x.dtype, alpha) and (
            not direct or (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)))
        saved = output[0] if from_output else output[1]
        ctx.save_for_backward(x, weight, bias, saved)
        ctx.conf = (stride, padding, dilation, groups, act, alpha)
        # The second output is almost never used: without this autograd would hand the
        # backward a zero gradient for it and we would run a second backward on zeros.
        ctx.set_materialize_grads(False)

    def _backward(ctx, grad_out, grad_pre):
        x, weight, bias, saved = ctx.saved_tensors
        stride, padding, dilation, groups, act, alpha = ctx.conf
        if grad_out is None:
            grad_out = x.new_zeros((x.shape[0], weight.shape[0],
                                    _out_len(x, weight, stride, padding, dilation)))
        need = ctx.needs_input_grad
        mask = [need[0], need[1], bias is not None and need[2]]
        gx, gw, gb = lib.fused_conv1d_backward(grad_out, x, weight, bias, saved, stride, padding,
                                               dilation, groups, act, alpha, mask)
        if grad_pre is not None and grad_pre.dim() == 3:
            # Only if a caller used the op's second output (the biased pre-activation; an
            # empty 1-D tensor when the op saved none).
            extra = lib.fused_conv1d_backward(grad_pre, x, weight, bias, saved, stride, padding,
                                              dilation, groups, "identity", alpha, mask)
            gx = gx + extra[0] if mask[0] else gx
            gw = gw + extra[1] if mask[1] else gw
            gb = gb + extra[2] if mask[2] else gb
        return (gx if mask[0] else None, gw if mask[1] else None, gb if mask[2] else None,
                None, None, None, None, None, None)

    register_autograd("lightdl::fused_conv1d", _backward, setup_context=_setup)


if _backend._C is not None:
    _register()

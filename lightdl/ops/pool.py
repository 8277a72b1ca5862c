"""`act_pool1d(x, act, pool, kernel_size, stride, padding)` = pool(act(x)) over the last dim,
max or average, in one pass forward and one backward.

It ends a conv -> norm -> act -> pool block: the activation and the pooling would otherwise be
two more passes over the block's largest tensor, and torch's max_pool1d with grad keeps an
int64 index tensor (its CPU kernel is the 2-D one, ~10x slower than without grad at the
sizes of af_cnn). The compiled op saves only x; its backward recomputes each max window's
argmax (the first maximum, or the last NaN, as torch's max pooling) and applies act' once.

This file holds the public function, its pure-PyTorch reference (the fallback and the test
oracle), and the autograd formula and fake kernels of torch.ops.lightdl.act_pool1d. No
autocast rule: the op runs in its input's dtype, as torch's pooling does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightdl.ops import _backend
from lightdl.ops._acts import apply_reference, check_act
from lightdl.ops._autograd import call, register_autograd
from lightdl.ops._checks import check_float, check_int, check_tensor

_OP = "act_pool1d"
POOLS = ("max", "avg")


def act_pool1d_reference(x: torch.Tensor, act: str = "identity", pool: str = "max",
                         kernel_size: int = 2, stride: int | None = None, padding: int = 0,
                         alpha: float = 0.01) -> torch.Tensor:
    """Pure-PyTorch `F.max_pool1d(act(x), ...)` or `F.avg_pool1d(act(x), ...)`."""
    y = apply_reference(x, act, alpha)
    stride = kernel_size if stride is None else stride
    if pool == "max":
        return F.max_pool1d(y, kernel_size, stride, padding)
    return F.avg_pool1d(y, kernel_size, stride, padding)


def _check(x, act, pool, kernel_size, stride, padding, alpha):
    check_tensor(x, "x", _OP)
    if x.dim() not in (2, 3):
        raise ValueError(f"{_OP}: `x` must have shape (N, C, L) or (C, L), got {tuple(x.shape)}")
    check_act(act, _OP)
    if pool not in POOLS:
        raise ValueError(f"{_OP}: `pool` must be one of {', '.join(POOLS)}; got {pool!r}")
    k = check_int(kernel_size, "kernel_size", _OP, 1)
    s = k if stride is None else check_int(stride, "stride", _OP, 1)
    p = check_int(padding, "padding", _OP, 0)
    if 2 * p > k:
        raise ValueError(f"{_OP}: `padding` must be at most kernel_size / 2, got padding={p} "
                         f"for kernel_size={k}")
    if x.shape[-1] + 2 * p < k:
        raise ValueError(f"{_OP}: input too short: length {x.shape[-1]} with padding {p} is "
                         f"shorter than kernel_size {k}")
    return k, s, p, check_float(alpha, "alpha", _OP)


def act_pool1d(x: torch.Tensor, act: str = "identity", pool: str = "max", kernel_size: int = 2,
               stride: int | None = None, padding: int = 0, alpha: float = 0.01) -> torch.Tensor:
    """`pool(act(x))` over the last dim, as `F.max_pool1d` / `F.avg_pool1d` (ceil_mode=False;
    avg counts the zero padding, divisor kernel_size).

    Args:
        x: (N, C, L) or unbatched (C, L).
        act: one of lightdl.ops.ACTIVATIONS, applied before pooling; alpha: leaky_relu's slope.
        pool: "max" or "avg".
        kernel_size: window; stride: default kernel_size; padding: 0 .. kernel_size // 2 each side.
    Returns:
        (N, C, L_out) (or (C, L_out)), L_out = (L + 2 padding - kernel_size) // stride + 1.
    """
    k, s, p, alpha = _check(x, act, pool, kernel_size, stride, padding, alpha)
    if not _backend.use_native(x):
        return act_pool1d_reference(x, act, pool, k, s, p, alpha)
    if x.dim() == 2:
        return call(torch.ops.lightdl.act_pool1d, x.unsqueeze(0), act, pool, k, s, p, alpha).squeeze(0)
    return call(torch.ops.lightdl.act_pool1d, x, act, pool, k, s, p, alpha)


def _register() -> None:
    lib = torch.ops.lightdl

    @torch.library.register_fake("lightdl::act_pool1d")
    def _(x, act, pool, kernel_size, stride, padding, alpha=0.01):
        out_len = (x.shape[2] + 2 * padding - kernel_size) // stride + 1
        return x.new_empty((x.shape[0], x.shape[1], out_len))

    @torch.library.register_fake("lightdl::act_pool1d_backward")
    def _(grad, x, act, pool, kernel_size, stride, padding, alpha):
        return torch.empty_like(x, memory_format=torch.contiguous_format)

    def _setup(ctx, inputs, output):
        x, *conf = inputs
        ctx.save_for_backward(x)
        ctx.conf = conf

    def _backward(ctx, grad):
        (x,) = ctx.saved_tensors
        grad_x = lib.act_pool1d_backward(grad, x, *ctx.conf) if ctx.needs_input_grad[0] else None
        return grad_x, None, None, None, None, None, None

    register_autograd("lightdl::act_pool1d", _backward, setup_context=_setup)


if _backend._C is not None:
    _register()

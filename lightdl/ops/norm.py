"""`batch_norm_act_pool1d(x, running_mean, running_var, weight, bias, training, momentum, eps,
act, pool, kernel_size, ...)` = pool(act(F.batch_norm(x, ...))) over (N, C, L), in one op.

It replaces the norm -> act -> pool tail of a conv block (CNN1d): on short series PyTorch's
training-mode batch norm costs more than the convolution before it (F.batch_norm at 64 x 32 x
60 on one core: ~0.4 ms each way). The compiled op (csrc/bn_act_pool.cpp) computes the
per-channel statistics in one pass and the normalised, activated, pooled output with the
act_pool1d kernels; it saves only x and the two statistics, and its backward recomputes the
rest. The op itself is functional (it returns the batch mean and variance); the running
statistics are updated here, as F.batch_norm does: momentum-weighted, with the unbiased
variance.

No autocast rule: it runs in x's dtype (weight, bias and running statistics may be float32
with half or bfloat16 x, as under autocast), computing in float32 for half types.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightdl.ops import _backend
from lightdl.ops._acts import check_act
from lightdl.ops._autograd import call, register_autograd
from lightdl.ops._checks import check_float, check_tensor
from lightdl.ops.pool import _check as _check_pool
from lightdl.ops.pool import act_pool1d_reference

_OP = "batch_norm_act_pool1d"


def batch_norm_act_pool1d_reference(
    x: torch.Tensor, running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
    training: bool = False, momentum: float = 0.1, eps: float = 1e-5, act: str = "identity",
    pool: str = "max", kernel_size: int = 2, stride: int | None = None, padding: int = 0,
    alpha: float = 0.01,
) -> torch.Tensor:
    """Pure-PyTorch `pool(act(F.batch_norm(x, ...)))` (updates the running statistics as
    F.batch_norm does)."""
    y = F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    return act_pool1d_reference(y, act, pool, kernel_size, stride, padding, alpha)


def _check_channels(t: torch.Tensor | None, name: str, x: torch.Tensor) -> None:
    if t is None:
        return
    check_tensor(t, name, _OP)
    if t.dim() != 1 or t.shape[0] != x.shape[1]:
        raise ValueError(f"{_OP}: `{name}` must have shape ({x.shape[1]},) (one value per channel "
                         f"of x), got {tuple(t.shape)}")
    if t.device != x.device:
        raise ValueError(f"{_OP}: `{name}` is on {t.device} but `x` is on {x.device}")


def _check(x, running_mean, running_var, weight, bias, training, momentum, eps, act, pool,
           kernel_size, stride, padding, alpha):
    check_tensor(x, "x", _OP)
    if x.dim() != 3:
        raise ValueError(f"{_OP}: `x` must have shape (N, C, L), got {tuple(x.shape)}")
    for t, name in ((running_mean, "running_mean"), (running_var, "running_var"),
                    (weight, "weight"), (bias, "bias")):
        _check_channels(t, name, x)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{_OP}: pass both `running_mean` and `running_var`, or neither")
    if not training and running_mean is None:
        raise ValueError(f"{_OP}: `running_mean` and `running_var` are needed when "
                         "training=False")
    if training and x.shape[0] * x.shape[2] <= 1:
        raise ValueError(f"{_OP}: expected more than 1 value per channel when training, got "
                         f"input of shape {tuple(x.shape)}")
    eps = check_float(eps, "eps", _OP)
    if not eps > 0:
        raise ValueError(f"{_OP}: `eps` must be > 0, got {eps}")
    momentum = check_float(momentum, "momentum", _OP)
    check_act(act, _OP)
    return (momentum, eps, *_check_pool(x, act, pool, kernel_size, stride, padding, alpha))


def batch_norm_act_pool1d(
    x: torch.Tensor, running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
    training: bool = False, momentum: float = 0.1, eps: float = 1e-5, act: str = "identity",
    pool: str = "max", kernel_size: int = 2, stride: int | None = None, padding: int = 0,
    alpha: float = 0.01,
) -> torch.Tensor:
    """`pool(act(F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum,
    eps)))`, pooling as lightdl.ops.act_pool1d.

    Args:
        x: (N, C, L).
        running_mean, running_var: (C,) or None (then batch statistics are always used);
            updated in place when training, as by F.batch_norm.
        weight, bias: (C,) or None (1 and 0).
        act: one of lightdl.ops.ACTIVATIONS; alpha: leaky_relu's slope.
        pool: "max" or "avg"; kernel_size, stride (default kernel_size), padding as for
            act_pool1d.
    Returns:
        (N, C, L_out), L_out = (L + 2 padding - kernel_size) // stride + 1.
    """
    momentum, eps, k, s, p, alpha = _check(x, running_mean, running_var, weight, bias, training,
                                           momentum, eps, act, pool, kernel_size, stride,
                                           padding, alpha)
    if not _backend.use_native(x):
        return batch_norm_act_pool1d_reference(x, running_mean, running_var, weight, bias,
                                               training, momentum, eps, act, pool, k, s, p, alpha)
    batch_stats = training or running_mean is None
    out, mean, var = call(torch.ops.lightdl.bn_act_pool1d, x, weight, bias, running_mean,
                          running_var, batch_stats, eps, act, pool, k, s, p, alpha)
    if training and running_mean is not None:
        with torch.no_grad():
            n = x.shape[0] * x.shape[2]
            running_mean.lerp_(mean.to(running_mean.dtype), momentum)
            running_var.lerp_((var * (n / (n - 1))).to(running_var.dtype), momentum)
    return out


def _register() -> None:
    lib = torch.ops.lightdl

    def _stat_dtype(x: torch.Tensor) -> torch.dtype:
        return torch.float64 if x.dtype == torch.float64 else torch.float32

    @torch.library.register_fake("lightdl::bn_act_pool1d")
    def _(x, weight, bias, running_mean, running_var, training, eps, act, pool, kernel_size,
          stride, padding, alpha=0.01):
        out_len = (x.shape[2] + 2 * padding - kernel_size) // stride + 1
        stats = x.new_empty((x.shape[1],), dtype=_stat_dtype(x))
        return x.new_empty((x.shape[0], x.shape[1], out_len)), stats, torch.empty_like(stats)

    @torch.library.register_fake("lightdl::bn_act_pool1d_backward")
    def _(grad, x, weight, bias, mean, var, training, eps, act, pool, kernel_size, stride,
          padding, alpha, output_mask):
        gx = torch.empty_like(x, memory_format=torch.contiguous_format) if output_mask[0] \
            else x.new_empty((0,))
        gw = torch.empty_like(weight, memory_format=torch.contiguous_format) \
            if output_mask[1] and weight is not None else x.new_empty((0,))
        gb = torch.empty_like(bias, memory_format=torch.contiguous_format) \
            if output_mask[2] and bias is not None else x.new_empty((0,))
        return gx, gw, gb

    def _setup(ctx, inputs, output):
        x, weight, bias, _rm, _rv, training, *conf = inputs
        _, mean, var = output
        ctx.save_for_backward(x, weight, bias, mean, var)
        ctx.conf = (training, *conf)
        ctx.mark_non_differentiable(mean, var)
        ctx.set_materialize_grads(False)

    def _backward(ctx, grad, _grad_mean, _grad_var):
        x, weight, bias, mean, var = ctx.saved_tensors
        need = ctx.needs_input_grad
        mask = [need[0], weight is not None and need[1], bias is not None and need[2]]
        if grad is None or not any(mask):
            return (None,) * 13
        gx, gw, gb = lib.bn_act_pool1d_backward(grad, x, weight, bias, mean, var, *ctx.conf,
                                                mask)
        return (gx if mask[0] else None, gw if mask[1] else None, gb if mask[2] else None,
                *(None,) * 10)

    register_autograd("lightdl::bn_act_pool1d", _backward, setup_context=_setup)


if _backend._C is not None:
    _register()

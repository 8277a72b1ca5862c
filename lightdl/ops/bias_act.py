"""`activation(x, act)` and `bias_act(x, bias, act)`: an activation, optionally after adding a
per-channel bias, in one pass over memory forward and one backward.

This file holds the public functions, their pure-PyTorch references (the fallback and the test
oracle), and the autograd formulas and fake kernels of torch.ops.lightdl.activation/bias_act.
Autocast is handled in C++ (csrc/lightdl.cpp): bias_act casts like the linear/conv op whose
epilogue it is; activation runs in its input dtype like torch's own activations.
"""

from __future__ import annotations

import torch

from lightdl.ops import _backend
from lightdl.ops._acts import apply_reference, check_act, grad_from_output
from lightdl.ops._autograd import call, register_autograd
from lightdl.ops._checks import autocast_active, check_float, check_like, check_tensor


def activation_reference(x: torch.Tensor, act: str, alpha: float = 0.01) -> torch.Tensor:
    """Pure-PyTorch `act(x)`."""
    return apply_reference(x, act, alpha)


def bias_act_reference(
    x: torch.Tensor, bias: torch.Tensor, act: str, alpha: float = 0.01
) -> torch.Tensor:
    """Pure-PyTorch `act(x + bias)`, bias broadcast along dim 1."""
    if autocast_active(x):  # mirror the native op's autocast rule (cast both, like linear)
        dtype = torch.get_autocast_dtype(x.device.type)
        x, bias = x.to(dtype), bias.to(dtype)
    shape = [1] * x.dim()
    shape[1] = -1
    return apply_reference(x + bias.view(shape), act, alpha)


def activation(x: torch.Tensor, act: str, alpha: float = 0.01) -> torch.Tensor:
    """Apply activation `act` elementwise.

    Args:
        x: any shape, floating dtype.
        act: one of lightdl.ops.ACTIVATIONS.
        alpha: negative slope of leaky_relu (ignored otherwise).
    Returns:
        Tensor of x's shape and dtype (contiguous).
    """
    check_tensor(x, "x", "activation")
    check_act(act, "activation")
    alpha = check_float(alpha, "alpha", "activation")
    if _backend.use_native(x):
        return call(torch.ops.lightdl.activation, x, act, alpha)
    return activation_reference(x, act, alpha)


def bias_act(x: torch.Tensor, bias: torch.Tensor, act: str, alpha: float = 0.01) -> torch.Tensor:
    """`act(x + bias)` with the bias broadcast along dim 1 (the channel/feature dim).

    Args:
        x: (N, C, *) — a linear output (N, C) or a conv output (N, C, L) / (N, C, H, W).
        bias: (C,), same dtype and device as x.
        act: one of lightdl.ops.ACTIVATIONS; alpha: leaky_relu's negative slope.
    Returns:
        (N, C, *) tensor of x's dtype.
    """
    check_tensor(x, "x", "bias_act", min_dim=2)
    check_tensor(bias, "bias", "bias_act")
    if bias.dim() != 1 or bias.shape[0] != x.shape[1]:
        raise ValueError(
            f"bias_act: `bias` must have shape ({x.shape[1]},) to match x.shape[1], "
            f"got {tuple(bias.shape)}"
        )
    check_like(bias, x, "bias", "x", "bias_act")
    check_act(act, "bias_act")
    alpha = check_float(alpha, "alpha", "bias_act")
    if _backend.use_native(x):
        return call(torch.ops.lightdl.bias_act, x, bias, act, alpha)
    return bias_act_reference(x, bias, act, alpha)


def _register() -> None:
    """Autograd formulas and fake kernels of the compiled ops (only when they exist)."""
    lib = torch.ops.lightdl

    @torch.library.register_fake("lightdl::activation")
    def _(x, act, alpha=0.01):
        return torch.empty_like(x, memory_format=torch.contiguous_format)

    @torch.library.register_fake("lightdl::activation_backward")
    def _(grad, x, act, alpha=0.01, x_is_output=False):
        return torch.empty_like(x, memory_format=torch.contiguous_format)

    @torch.library.register_fake("lightdl::bias_act")
    def _(x, bias, act, alpha=0.01):
        torch._check(bias.dim() == 1 and bias.shape[0] == x.shape[1], lambda: "bias_act: bad bias shape")
        return torch.empty_like(x, memory_format=torch.contiguous_format)

    @torch.library.register_fake("lightdl::bias_act_backward")
    def _(grad, x, bias, act, alpha=0.01, x_is_output=False):
        return (
            torch.empty_like(x, memory_format=torch.contiguous_format),
            torch.empty_like(bias, memory_format=torch.contiguous_format),
        )

    # sigmoid, tanh, relu and leaky_relu save their output, the others their input (see
    # _acts.grad_from_output).
    def _act_setup(ctx, inputs, output):
        x, act, alpha = (*inputs, 0.01)[:3]  # alpha is left out when the caller used its default
        ctx.from_output = grad_from_output(act, x.dtype, alpha)
        ctx.save_for_backward(output if ctx.from_output else x)
        ctx.act, ctx.alpha = act, alpha

    def _act_backward(ctx, grad):
        (saved,) = ctx.saved_tensors
        return lib.activation_backward(grad, saved, ctx.act, ctx.alpha, ctx.from_output), None, None

    register_autograd(
        "lightdl::activation", _act_backward, setup_context=_act_setup
    )

    def _bias_act_setup(ctx, inputs, output):
        x, bias, act, alpha = (*inputs, 0.01)[:4]
        ctx.from_output = grad_from_output(act, x.dtype, alpha)
        ctx.save_for_backward(output if ctx.from_output else x, bias)
        ctx.act, ctx.alpha = act, alpha

    def _bias_act_backward(ctx, grad):
        saved, bias = ctx.saved_tensors
        grad_x, grad_bias = lib.bias_act_backward(grad, saved, bias, ctx.act, ctx.alpha,
                                                  ctx.from_output)
        return grad_x, grad_bias, None, None

    register_autograd(
        "lightdl::bias_act", _bias_act_backward, setup_context=_bias_act_setup
    )


if _backend._C is not None:
    _register()

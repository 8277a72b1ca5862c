"""`fused_linear(x, weight, bias, act)` = act(x @ weight.T + bias).

One GEMM from the vendor library (at::mm: oneDNN/MKL/OpenBLAS on CPU, cuBLAS on CUDA) and our
bias+activation epilogue; the backward applies the activation derivative and reduces the bias
gradient in one fused pass (bias_act_backward), then two GEMMs. The compiled op returns the
GEMM output before bias and activation as a second result, which the backward needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightdl.ops import _backend
from lightdl.ops._acts import apply_reference, check_act, grad_from_output
from lightdl.ops._autograd import call, register_autograd
from lightdl.ops._checks import check_float, check_like, check_tensor


def fused_linear_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    act: str = "identity",
    alpha: float = 0.01,
) -> torch.Tensor:
    """Pure-PyTorch `act(F.linear(x, weight, bias))`."""
    return apply_reference(F.linear(x, weight, bias), act, alpha)


def fused_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    act: str = "identity",
    alpha: float = 0.01,
) -> torch.Tensor:
    """`act(x @ weight.T + bias)`.

    Args:
        x: (*, in_features).
        weight: (out_features, in_features).
        bias: (out_features,) or None.
        act: one of lightdl.ops.ACTIVATIONS; alpha: leaky_relu's negative slope.
    Returns:
        (*, out_features).
    """
    op = "fused_linear"
    check_tensor(x, "x", op, min_dim=1)
    check_tensor(weight, "weight", op)
    if weight.dim() != 2 or weight.shape[1] != x.shape[-1]:
        raise ValueError(
            f"{op}: `weight` must have shape (out_features, {x.shape[-1]}) to match "
            f"x.shape[-1], got {tuple(weight.shape)}"
        )
    check_like(weight, x, "weight", "x", op)
    if bias is not None:
        check_tensor(bias, "bias", op)
        if bias.dim() != 1 or bias.shape[0] != weight.shape[0]:
            raise ValueError(
                f"{op}: `bias` must have shape ({weight.shape[0]},), got {tuple(bias.shape)}"
            )
        check_like(bias, x, "bias", "x", op)
    check_act(act, op)
    alpha = check_float(alpha, "alpha", op)
    if _backend.use_native(x):
        return call(torch.ops.lightdl.fused_linear, x, weight, bias, act, alpha)[0]
    return fused_linear_reference(x, weight, bias, act, alpha)


def _register() -> None:
    lib = torch.ops.lightdl

    @torch.library.register_fake("lightdl::fused_linear")
    def _(x, weight, bias, act, alpha=0.01):
        out = x.new_empty((*x.shape[:-1], weight.shape[0]))
        pre = x.new_empty((0,)) if act == "identity" else torch.empty_like(out)
        return out, pre

    def _setup(ctx, inputs, output):
        x, weight, bias, act, alpha = (*inputs, 0.01)[:5]  # alpha left out when defaulted
        # The epilogue's backward works from the pre-activation, or from the output where the
        # derivative can be read from it (see _acts.grad_from_output).
        ctx.from_output = grad_from_output(act, x.dtype, alpha)
        ctx.save_for_backward(x, weight, bias, output[0] if ctx.from_output else output[1])
        ctx.act, ctx.alpha = act, alpha

    def _backward(ctx, grad_out, grad_pre):
        x, weight, bias, saved = ctx.saved_tensors
        out_features = weight.shape[0]
        if grad_out is None:
            grad_out = x.new_zeros((*x.shape[:-1], out_features))
        grad_bias = None
        if ctx.act == "identity":
            grad_z = grad_out
            if bias is not None:
                grad_bias = grad_out.reshape(-1, out_features).sum(0)
        else:
            # The fused epilogue: act' applied and the bias gradient reduced in one pass.
            g2 = grad_out.reshape(-1, out_features)
            s2 = saved.reshape(-1, out_features)
            if bias is not None:
                grad_z, grad_bias = lib.bias_act_backward(g2, s2, bias, ctx.act, ctx.alpha,
                                                          ctx.from_output)
            else:
                grad_z = lib.activation_backward(g2, s2, ctx.act, ctx.alpha, ctx.from_output)
            grad_z = grad_z.view(grad_out.shape)
            if grad_pre is not None:  # only if a caller used the op's second output
                grad_z = grad_z + grad_pre
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_z @ weight
        if ctx.needs_input_grad[1]:
            grad_w = grad_z.reshape(-1, out_features).t() @ x.reshape(-1, x.shape[-1])
        if not ctx.needs_input_grad[2]:
            grad_bias = None
        return grad_x, grad_w, grad_bias, None, None

    register_autograd("lightdl::fused_linear", _backward, setup_context=_setup)


if _backend._C is not None:
    _register()

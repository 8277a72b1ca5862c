"""The ops' autograd registration (lightdl/ops/_autograd.py): one Autograd kernel per op,
schema defaults handed to setup_context, no graph without grad, gradients only where asked."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import lightdl.ops as ops
from lightdl.ops import _backend
from tests.helpers import signal

pytestmark = pytest.mark.skipif(_backend._C is None, reason="compiled kernels unavailable")

DIFFERENTIABLE = ("activation", "bias_act", "fused_linear", "fused_conv1d", "lstm", "gru")


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_every_differentiable_op_has_an_autograd_kernel(name):
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"lightdl::{name}", "Autograd")


def test_arguments_left_at_their_defaults_reach_the_formula():
    # The dispatcher drops trailing arguments equal to their defaults; the formula must
    # still see alpha = 0.01 (leaky_relu) and stride/padding/... (conv1d).
    x = signal((5, 7), torch.float64, away_from_zero=0.1).requires_grad_()
    y = torch.ops.lightdl.activation(x, "leaky_relu")
    (gx,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(gx, torch.where(x > 0, 1.0, 0.01).to(x.dtype))

    x = signal((2, 3, 20), torch.float64).requires_grad_()
    w = signal((4, 3, 5), torch.float64).requires_grad_()
    out = torch.ops.lightdl.fused_conv1d(x, w, None)[0]
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, w), g)
    x2, w2 = x.detach().requires_grad_(), w.detach().requires_grad_()
    want = torch.autograd.grad(F.conv1d(x2, w2), (x2, w2), g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_no_graph_without_grad():
    x, b = signal((4, 6)), signal((6,))
    assert ops.bias_act(x, b, "relu").grad_fn is None
    x.requires_grad_()
    assert ops.bias_act(x, b, "relu").grad_fn is not None
    with torch.no_grad():
        assert ops.bias_act(x, b, "relu").grad_fn is None


def test_gradient_only_for_inputs_that_need_it():
    x = signal((3, 2, 30), torch.float64).requires_grad_()
    w, b = signal((4, 2, 3), torch.float64), signal((4,), torch.float64)  # frozen
    out = ops.fused_conv1d(x, w, b, padding=1, act="tanh")
    g = torch.randn_like(out)
    (gx,) = torch.autograd.grad(out, x, g)
    x2 = x.detach().requires_grad_()
    (want,) = torch.autograd.grad(torch.tanh(F.conv1d(x2, w, b, padding=1)), x2, g)
    torch.testing.assert_close(gx, want)
    assert w.grad is None and b.grad is None

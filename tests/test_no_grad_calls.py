"""The ops called where autograd records nothing (no_grad, inference_mode, no input requiring
grad) skip their Python Autograd kernel (lightdl.ops._autograd.call): same outputs, same
running statistics, autocast still applied, and a graph again as soon as one is wanted."""

from __future__ import annotations

import pytest
import torch

from lightdl.ops import (
    act_pool1d,
    activation,
    batch_norm_act_pool1d,
    bias_act,
    fused_conv1d,
    fused_linear,
)
from lightdl.ops._backend import _C
from tests.helpers import DEVICES, signal

pytestmark = pytest.mark.skipif(_C is None, reason="compiled extension not built")


def _cases(device: str) -> dict:
    """name -> (function of the inputs, inputs); fresh random inputs, parameters that would
    require grad in a model."""
    x2, x3 = signal((5, 8), device=device), signal((3, 4, 21), device=device)
    b8 = signal((8,), device=device).requires_grad_()
    wl = signal((8, 8), device=device).requires_grad_()
    wc = signal((8, 4, 3), device=device).requires_grad_()
    bn_w = (torch.rand(4, device=device) + 0.5).requires_grad_()
    bn_b = signal((4,), device=device).requires_grad_()

    def bn(x, w, b):  # training mode: also updates (fresh) running statistics
        rm, rv = torch.zeros(4, device=device), torch.ones(4, device=device)
        y = batch_norm_act_pool1d(x, rm, rv, w, b, True, 0.1, 1e-5, "relu", "max", 2)
        return y, rm, rv

    return {
        "activation": (lambda x: activation(x, "gelu"), (x2,)),
        "bias_act": (lambda x, b: bias_act(x, b, "silu"), (x2, b8)),
        "fused_linear": (lambda x, w, b: fused_linear(x, w, b, "relu"), (x2, wl, b8)),
        "fused_conv1d": (lambda x, w, b: fused_conv1d(x, w, b, padding=1, act="tanh"), (x3, wc, b8)),
        "act_pool1d": (lambda x: act_pool1d(x, "leaky_relu", "avg", 3, 2, 1), (x3,)),
        "batch_norm_act_pool1d": (bn, (x3, bn_w, bn_b)),
    }


def _outputs(out) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["activation", "bias_act", "fused_linear", "fused_conv1d",
                                  "act_pool1d", "batch_norm_act_pool1d"])
def test_no_grad_calls_match_recorded_calls(name, device):
    fn, inputs = _cases(device)[name]
    recorded = _outputs(fn(*(t.detach().requires_grad_() for t in inputs)))
    assert recorded[0].grad_fn is not None  # the Autograd kernel ran: a graph to backward
    plain = tuple(t.detach() for t in inputs)
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            got = _outputs(fn(*inputs))
        assert not got[0].requires_grad
        for a, b in zip(got, recorded, strict=True):
            torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)
    got = _outputs(fn(*plain))  # grad mode on, but nothing requires grad
    assert got[0].grad_fn is None
    for a, b in zip(got, recorded, strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["bias_act", "fused_linear", "fused_conv1d"])
def test_cpu_autocast_applies_without_grad(name):
    fn, inputs = _cases("cpu")[name]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        recorded = fn(*inputs)
        for mode in (torch.no_grad, torch.inference_mode):
            with mode():
                got = fn(*inputs)
            assert got.dtype == torch.bfloat16 == recorded.dtype
            torch.testing.assert_close(got, recorded.detach(), rtol=0, atol=0)


def test_compiled_without_grad():
    fn, inputs = _cases("cpu")["fused_conv1d"]
    compiled = torch.compile(fn, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(*inputs), fn(*inputs))

"""fused_linear and the FusedLinear / Activation modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lightdl
from lightdl.nn import Activation, FusedLinear
from lightdl.ops import ACTIVATIONS, FORWARD_ONLY, fused_linear, fused_linear_reference
from lightdl.ops._backend import _C
from tests.helpers import DEVICES, TOL, signal

pytestmark = pytest.mark.skipif(_C is None, reason="compiled extension not built")

DIFFERENTIABLE = [a for a in ACTIVATIONS if a not in FORWARD_ONLY]


def _run(fn, x, w, b, act, grad):
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    b = None if b is None else b.detach().requires_grad_()
    y = fn(x, w, b, act)
    y.backward(grad)
    return y.detach(), x.grad, w.grad, None if b is None else b.grad


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("act", ["identity", "relu", "gelu", "tanh", "leaky_relu"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_shape", [(16, 24), (3, 5, 24), (24,)], ids=str)
def test_fused_linear_matches_reference(x_shape, bias, act, dtype, device):
    x = signal(x_shape, dtype, device)
    w = torch.randn(12, 24, dtype=dtype, device=device) / 5
    b = torch.randn(12, dtype=dtype, device=device) if bias else None
    grad = torch.randn((*x_shape[:-1], 12), dtype=dtype, device=device)
    got = _run(fused_linear, x, w, b, act, grad)
    # Oracle: PyTorch in float64 from the same inputs, rounded once; for bfloat16, PyTorch's own
    # bfloat16 path, so that a pre-activation rounded across relu's kink (0) is rounded the
    # same way on both sides rather than flagged as an error of a whole gradient row.
    od = dtype if dtype == torch.bfloat16 else torch.float64
    want = _run(fused_linear_reference, x.to(od), w.to(od), None if b is None else b.to(od),
                act, grad.to(od))
    if dtype == torch.bfloat16 and act in ("relu", "leaky_relu"):
        # A bfloat16 pre-activation within a rounding of relu's kink may land on either side
        # (we round the GEMM output, then add the bias in float32; PyTorch rounds once), which
        # flips a whole row of grad_x. Gradients through kinks are checked in float32/float64
        # and elementwise in bfloat16 (tests/test_bias_act.py); here only the forward.
        got, want = got[:1], want[:1]
    for g, r in zip(got, want, strict=True):
        if r is None:
            assert g is None
            continue
        assert g.dtype == dtype
        # GEMMs differ from float64 by their summation error, which scales with the largest
        # terms, not with each (possibly cancelling) result; act' carries an absolute error of a
        # few eps times the incoming gradient, which the weights then sum: tolerance relative
        # to whichever is larger.
        rel = {torch.float64: 1e-12, torch.float32: 2e-6, torch.bfloat16: 2e-2}[dtype]
        fan = max(w.abs().sum(0).max().item(), x.abs().max().item())  # grad_x sums W, grad_w x
        scale = max(r.abs().max().item(), grad.abs().max().item() * fan)
        torch.testing.assert_close(g, r.to(dtype), rtol=rel, atol=rel * scale)


@pytest.mark.parametrize("act", ["identity", "gelu", "silu", "leaky_relu"])
def test_fused_linear_gradcheck(act):
    x = signal((5, 7), torch.float64).requires_grad_()
    w = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    # leaky_relu has a kink at 0: pre-activations this close to 0 are improbable with these inputs
    assert torch.autograd.gradcheck(lambda x, w, b: fused_linear(x, w, b, act), (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w: fused_linear(x, w, None, act), (x, w))


@pytest.mark.parametrize("act", ["identity", "gelu"])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_linear_opcheck(act, bias):
    x = torch.randn(6, 8, requires_grad=True)
    w = torch.randn(5, 8, requires_grad=True)
    b = torch.randn(5, requires_grad=True) if bias else None
    torch.library.opcheck(torch.ops.lightdl.fused_linear.default, (x, w, b, act, 0.01))


def test_fused_linear_empty_and_non_contiguous():
    w = torch.randn(6, 10, requires_grad=True)
    b = torch.randn(6, requires_grad=True)
    y = fused_linear(torch.randn(0, 10, requires_grad=True), w, b, "relu")
    assert y.shape == (0, 6)
    y.sum().backward()
    assert torch.equal(b.grad, torch.zeros(6)) and torch.equal(w.grad, torch.zeros(6, 10))
    x = signal((10, 20)).t()  # (20, 10), column-major
    wt = torch.randn(10, 6).t()  # non-contiguous weight
    torch.testing.assert_close(fused_linear(x, wt, b, "gelu"),
                               fused_linear_reference(x, wt, b, "gelu"), rtol=1e-5, atol=1e-5)


def test_fused_linear_bad_inputs():
    x = torch.randn(4, 8)
    with pytest.raises(ValueError, match=r"`weight` must have shape \(out_features, 8\)"):
        fused_linear(x, torch.randn(3, 7))
    with pytest.raises(ValueError, match=r"`bias` must have shape \(3,\)"):
        fused_linear(x, torch.randn(3, 8), torch.randn(4))
    with pytest.raises(TypeError, match="`weight` dtype torch.float64 differs from `x`"):
        fused_linear(x, torch.randn(3, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="`weight` is on meta but `x` is on cpu"):
        fused_linear(x, torch.randn(3, 8, device="meta"))
    with pytest.raises(ValueError, match="act must be one of"):
        fused_linear(x, torch.randn(3, 8), None, "softmax")


def test_fused_linear_cpu_autocast_bf16():
    lin = nn.Linear(16, 8)
    fused = FusedLinear(16, 8, act="gelu")
    fused.load_state_dict(lin.state_dict())
    x = torch.randn(4, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fused(x)
        ref = torch.nn.functional.gelu(lin(x))
    assert y.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(y, ref, rtol=2e-2, atol=2e-2)
    y.float().sum().backward()
    assert fused.weight.grad.dtype == torch.float32


def test_fused_linear_compiles_without_graph_breaks():
    model = nn.Sequential(FusedLinear(8, 16, act="relu"), FusedLinear(16, 4, act="identity"))
    x = torch.randn(5, 8)
    compiled = torch.compile(model, fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x))


@pytest.mark.parametrize("act", ["identity", "relu", "tanh"])
def test_state_dict_interchange_with_nn_linear(act):
    torch.manual_seed(0)
    lin = nn.Linear(10, 7)
    torch.manual_seed(0)
    fused = FusedLinear(10, 7, act=act)
    # same initialisation, same keys, both directions
    assert fused.state_dict().keys() == lin.state_dict().keys()
    for k, v in lin.state_dict().items():
        assert torch.equal(fused.state_dict()[k], v)
    other = nn.Linear(10, 7)
    fused.load_state_dict(other.state_dict())
    x = torch.randn(3, 10)
    torch.testing.assert_close(fused(x), lightdl.ops.activation_reference(other(x), act))
    back = nn.Linear(10, 7)
    back.load_state_dict(fused.state_dict())
    torch.testing.assert_close(back(x), other(x))
    assert "act=" in repr(fused)


def test_fused_linear_without_bias_matches_nn():
    lin = nn.Linear(6, 3, bias=False)
    fused = FusedLinear(6, 3, bias=False)
    fused.load_state_dict(lin.state_dict())
    x = torch.randn(2, 6)
    torch.testing.assert_close(fused(x), lin(x))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_module(act):
    m = Activation(act, alpha=0.3)
    x = signal((4, 5))
    torch.testing.assert_close(m(x), lightdl.ops.activation_reference(x, act, 0.3), **TOL[torch.float32])
    assert act in repr(m)
    with pytest.raises(ValueError, match="act must be one of"):
        Activation("nope")

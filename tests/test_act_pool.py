"""act_pool1d (pool(act(x)), max or avg) and FusedMaxPool1d / FusedAvgPool1d against PyTorch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lightdl
from lightdl.nn import FusedAvgPool1d, FusedMaxPool1d
from lightdl.ops import ACTIVATIONS, FORWARD_ONLY, act_pool1d
from lightdl.ops._backend import _C
from tests.helpers import DEVICES, TOL, signal

pytestmark = pytest.mark.skipif(_C is None, reason="compiled extension not built")

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# (kernel_size, stride, padding): stride == kernel (the vectorised path, K = 2 and K = 3) and
# overlapping, strided and padded windows (the generic path).
WINDOWS = [(2, 2, 0), (3, 3, 0), (3, 1, 1), (3, 2, 1), (5, 3, 2), (1, 1, 0), (4, 2, 2)]


def _reference(x, act, pool, k, s, p, grad):
    """Output and input gradient from PyTorch (act, then F.max_pool1d / F.avg_pool1d) in
    float64, rounded once to x's dtype."""
    xd = x.detach().double().requires_grad_()
    with lightdl.ops.use_backend("reference"):
        y = act_pool1d(xd, act, pool, k, s, p)
    gx = torch.autograd.grad(y, xd, grad.double())[0] if y.requires_grad else torch.zeros_like(xd)
    return y.detach().to(x.dtype), gx.to(x.dtype)


def _near_tie_inputs(x, act, k, s, p, gap):
    """Input positions read by a max window whose two largest activations (float64) lie within
    `gap` of each other: there the float32 kernels' activation (a few ulp off, and more in the
    far tails of gelu/silu, e.g. gelu(-5.4) ~ -1.6e-7) may pick the other element, and the
    gradient goes to it, which is not an error of the pooling."""
    with lightdl.ops.use_backend("reference"):
        a = act_pool1d(x.detach().double(), act, "max", 1, 1, 0)  # act alone
    windows = F.pad(a, (p, p), value=float("-inf")).unfold(-1, k, s)  # (N, C, Lo, k)
    top = windows.topk(min(2, k), dim=-1).values
    ties = (top[..., 0] - top[..., -1] <= gap * (1 + top[..., 0].abs())) if k > 1 else \
        torch.zeros(top.shape[:-1], dtype=torch.bool, device=x.device)
    mask = torch.zeros_like(a, dtype=torch.bool)
    for n, c, j in ties.nonzero().tolist():
        mask[n, c, max(0, j * s - p):max(0, j * s - p + k)] = True
    return mask


def _native(x, act, pool, k, s, p, grad):
    x = x.detach().requires_grad_()
    y = act_pool1d(x, act, pool, k, s, p)
    (gx,) = torch.autograd.grad(y, x, grad)
    return y.detach(), gx


def _out_len(length, k, s, p):
    return (length + 2 * p - k) // s + 1


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("window", WINDOWS, ids=str)
@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_matches_reference(act, pool, window, dtype, device):
    k, s, p = window
    x = signal((3, 5, 37), dtype, device)  # 37: windows leave a tail at every stride
    grad = signal((3, 5, _out_len(37, k, s, p)), dtype, device)
    y, gx = _native(x, act, pool, k, s, p, grad)
    ry, rgx = _reference(x, act, pool, k, s, p, grad)
    torch.testing.assert_close(y, ry, **TOL[dtype])
    # Half types: act(x) rounded to half can tie two window elements the float computation
    # tells apart, and the max would route the gradient elsewhere; piecewise-linear acts are
    # exact in half, so their gradients are compared in every dtype.
    if dtype in (torch.float32, torch.float64) or pool == "avg" or act in ("identity", "relu"):
        tol = TOL[dtype]
        bound = tol["rtol"] * rgx.double().abs() + tol["atol"] * (1 + grad.double().abs().max())
        err = (gx.double() - rgx.double()).abs()
        if pool == "max" and dtype == torch.float32:
            err = err.masked_fill(_near_tie_inputs(x, act, k, s, p, 1e-5), 0)
        assert (err <= bound).all(), f"max err {err.max().item()}"


@pytest.mark.parametrize("shape", [(64, 64, 15), (40, 9, 37)], ids=str)
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_tail_rows_gathered_in_runs(pool, k, shape):
    """Lengths that leave a tail, with enough rows that the CPU kernels gather them in several
    runs (csrc/cpu/act_pool.cpp, kGather) and over several parallel tasks."""
    x = signal(shape)
    grad = signal((*shape[:2], shape[2] // k))
    y, gx = _native(x, "relu", pool, k, k, 0, grad)
    ry, rgx = _reference(x, "relu", pool, k, k, 0, grad)
    torch.testing.assert_close(y, ry, **TOL[torch.float32])
    torch.testing.assert_close(gx, rgx, **TOL[torch.float32])
    assert (gx[..., shape[2] // k * k:] == 0).all()  # the tail, read by no window


@pytest.mark.parametrize("window", [(2, 2, 0), (3, 2, 1), (4, 3, 2)], ids=str)
@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("act", [a for a in ACTIVATIONS if a not in FORWARD_ONLY])
def test_gradcheck_float64(act, pool, window):
    k, s, p = window
    # Distinct values away from relu's kink: max windows never tie.
    x = (torch.randperm(2 * 3 * 11, dtype=torch.float64).view(2, 3, 11) - 33.0) / 8.0 + 1 / 16
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: act_pool1d(t, act, pool, k, s, p), (x,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_opcheck(pool, device):
    x = signal((4, 3, 20), device=device).requires_grad_()
    torch.library.opcheck(torch.ops.lightdl.act_pool1d.default, (x, "gelu", pool, 2, 2, 0, 0.01))
    torch.library.opcheck(torch.ops.lightdl.act_pool1d.default, (x, "relu", pool, 3, 2, 1, 0.01))
    g = signal((4, 3, 10), device=device)
    torch.library.opcheck(torch.ops.lightdl.act_pool1d_backward.default,
                          (g, x.detach(), "silu", pool, 2, 2, 0, 0.01))


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_input_and_unbatched(device):
    x = signal((6, 40, 8), device=device).transpose(1, 2)[:, ::2]  # (6, 4, 40), strided
    assert not x.is_contiguous()
    grad = signal((6, 4, 20), device=device)
    for pool in ("max", "avg"):
        y, gx = _native(x, "leaky_relu", pool, 2, 2, 0, grad)
        ry, rgx = _reference(x, "leaky_relu", pool, 2, 2, 0, grad)
        torch.testing.assert_close(y, ry, **TOL[torch.float32])
        torch.testing.assert_close(gx, rgx, **TOL[torch.float32])
    x2 = signal((4, 21), device=device)
    with lightdl.ops.use_backend("reference"):
        expected = act_pool1d(x2, "tanh", "max", 3, 2, 1)
    torch.testing.assert_close(act_pool1d(x2, "tanh", "max", 3, 2, 1), expected,
                               **TOL[torch.float32])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(0, 4, 10), (3, 0, 10)], ids=str)
def test_empty(shape, device):
    x = torch.randn(shape, device=device, requires_grad=True)
    y = act_pool1d(x, "relu", "max", 2)
    assert y.shape == (shape[0], shape[1], 5)
    y.sum().backward()
    assert x.grad.shape == shape


def test_max_propagates_nan_like_torch():
    x = torch.tensor([[[1.0, float("nan"), 3.0, 2.0, -1.0, 0.5]]])
    for k, s, p in [(2, 2, 0), (3, 1, 1)]:
        expected = F.max_pool1d(x, k, s, p)
        torch.testing.assert_close(act_pool1d(x, "identity", "max", k, s, p), expected,
                                   equal_nan=True)


def test_bad_inputs_name_the_argument():
    x = torch.randn(2, 3, 10)
    with pytest.raises(ValueError, match="`pool` must be one of max, avg"):
        act_pool1d(x, "relu", "min")
    with pytest.raises(ValueError, match="`kernel_size` must be >= 1"):
        act_pool1d(x, "relu", "max", 0)
    with pytest.raises(ValueError, match="`padding` must be at most kernel_size / 2"):
        act_pool1d(x, "relu", "max", 2, 2, 2)
    with pytest.raises(ValueError, match="input too short: length 10"):
        act_pool1d(x, "relu", "max", 11)
    with pytest.raises(ValueError, match=r"`x` must have shape \(N, C, L\) or \(C, L\)"):
        act_pool1d(torch.randn(10), "relu", "max")
    with pytest.raises(TypeError, match="`x` must be float32"):
        act_pool1d(torch.ones(2, 3, 10, dtype=torch.int64), "relu", "max")
    with pytest.raises(TypeError, match="`stride` must be an int"):
        act_pool1d(x, "relu", "max", 2, 1.5)
    with pytest.raises(ValueError, match="act must be one of"):
        act_pool1d(x, "swish", "max")


def test_direct_op_calls_are_checked_in_cpp():
    x = torch.randn(2, 3, 10)
    with pytest.raises(ValueError, match=r"`x` must have shape \(N, C, L\)"):
        torch.ops.lightdl.act_pool1d(x[0], "relu", "max", 2, 2, 0)
    with pytest.raises(ValueError, match="`padding` must be between 0 and kernel_size / 2"):
        torch.ops.lightdl.act_pool1d(x, "relu", "max", 2, 2, 3)
    with pytest.raises(ValueError, match="`pool` must be 'max' or 'avg'"):
        torch.ops.lightdl.act_pool1d(x, "relu", "sum", 2, 2, 0)
    with pytest.raises(ValueError, match=r"`grad` must have shape \(2, 3, 5\)"):
        torch.ops.lightdl.act_pool1d_backward(torch.randn(2, 3, 4), x, "relu", "max", 2, 2, 0,
                                              0.01)


def test_compile_fullgraph_matches_eager():
    def f(x):
        return act_pool1d(x, "gelu", "max", 2).sum(dim=2)

    x = signal((4, 6, 30)).requires_grad_()
    y = torch.compile(f, fullgraph=True)(x)
    y.sum().backward()
    gx = x.grad.clone()
    x.grad = None
    y_eager = f(x)
    y_eager.sum().backward()
    torch.testing.assert_close(y, y_eager)
    torch.testing.assert_close(gx, x.grad)


@pytest.mark.parametrize("device", DEVICES)
def test_modules_match_torch_nn(device):
    x = signal((5, 4, 33), device=device)
    cases = [
        (FusedMaxPool1d(3, 2, 1, act="relu"), nn.Sequential(nn.ReLU(), nn.MaxPool1d(3, 2, 1))),
        (FusedMaxPool1d(2), nn.MaxPool1d(2)),
        (FusedAvgPool1d(4, padding=2, act="silu"), nn.Sequential(nn.SiLU(), nn.AvgPool1d(4, padding=2))),
    ]
    for fused, plain in cases:
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = fused(xa), plain(xb)
        torch.testing.assert_close(ya, yb, **TOL[torch.float32])
        ya.sum().backward()
        yb.sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad, **TOL[torch.float32])
    assert "act='relu'" in repr(cases[0][0])


def test_modules_reject_unsupported_options():
    with pytest.raises(ValueError, match="dilation=2 is not supported"):
        FusedMaxPool1d(2, dilation=2)
    with pytest.raises(ValueError, match="ceil_mode=True are not supported"):
        FusedMaxPool1d(2, ceil_mode=True)
    with pytest.raises(ValueError, match="count_include_pad=False are not supported"):
        FusedAvgPool1d(2, count_include_pad=False)
    with pytest.raises(ValueError, match="act must be one of"):
        FusedMaxPool1d(2, act="swish")

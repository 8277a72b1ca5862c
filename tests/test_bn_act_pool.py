"""batch_norm_act_pool1d (pool(act(batch_norm(x)))) and FusedBatchNorm1d against PyTorch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lightdl
from lightdl.nn import FusedBatchNorm1d
from lightdl.ops import ACTIVATIONS, FORWARD_ONLY, batch_norm_act_pool1d
from lightdl.ops._acts import apply_reference
from lightdl.ops._backend import _C
from tests.helpers import DEVICES, TOL, signal

pytestmark = pytest.mark.skipif(_C is None, reason="compiled extension not built")

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
WINDOWS = [(2, 2, 0), (3, 3, 0), (3, 2, 1)]  # tiled K = 2, tiled K = 3, overlapping + padded


def _stats_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _params(c, dtype, device):
    """weight, bias and running statistics in the parameters' dtype (float32 for half x, as
    a BatchNorm kept in float32 under autocast)."""
    pd = _stats_dtype(dtype)
    w = torch.rand(c, dtype=pd, device=device) + 0.5
    b = torch.randn(c, dtype=pd, device=device)
    rm = torch.randn(c, dtype=pd, device=device)
    rv = torch.rand(c, dtype=pd, device=device) + 0.5
    return w, b, rm, rv


def _run(x, w, b, rm, rv, training, act, pool, k, s, p, grad, backend):
    """Output, (x, weight, bias) gradients and the running statistics after the call."""
    rm, rv = rm.clone(), rv.clone()
    if backend == "reference":  # in float64, rounded once to x's dtype
        xs, ws, bs = (t.detach().double().requires_grad_() for t in (x, w, b))
        rms, rvs, g = rm.double(), rv.double(), grad.double()
    else:
        xs, ws, bs = (t.detach().requires_grad_() for t in (x, w, b))
        rms, rvs, g = rm, rv, grad
    with lightdl.ops.use_backend(backend):
        y = batch_norm_act_pool1d(xs, rms, rvs, ws, bs, training, 0.1, 1e-5, act, pool, k, s, p)
    grads = torch.autograd.grad(y, (xs, ws, bs), g, allow_unused=True)
    grads = [torch.zeros_like(t) if gr is None else gr for gr, t in zip(grads, (xs, ws, bs), strict=True)]
    return (y.detach().to(x.dtype), grads[0].to(x.dtype), grads[1].to(w.dtype),
            grads[2].to(b.dtype), rms.to(rm.dtype), rvs.to(rv.dtype))


def _close(a, ref, dtype, what):
    """|a - ref| <= rtol |ref| + atol * (1 + max |ref|): BN's sums over the batch make errors
    scale with the largest values, not with each element."""
    tol = TOL[dtype]
    bound = tol["rtol"] * ref.double().abs() + tol["atol"] * (1 + ref.double().abs().max())
    err = (a.double() - ref.double()).abs()
    assert (err <= bound).all(), f"{what}: max err {err.max().item()}"


def _z(x, w, b, rm, rv, training) -> torch.Tensor:
    """The batch norm's output (the act's input) in float64, from float64 statistics."""
    return F.batch_norm(x.double(), rm.double().clone(), rv.double().clone(), w.double(),
                        b.double(), training, 0.1, 1e-5)


def _near_tie(x, w, b, rm, rv, training, act, k, s, p) -> bool:
    """Whether some max window's two largest act(z) (float64 reference) differ, but by less
    than float32 z (computed from float32 statistics, with a shift of order 1) can resolve:
    the two may then tie or swap, and the window's gradient legitimately goes to either
    (e.g. two of signal()'s ~1e-4 values a hair apart). Exact ties are fine: both sides take
    the first. About 40% of random inputs have such a pair somewhere; a swap is rare (none
    in 400 float16 trials here, one in a CI run: float16, identity, max over 2).
    For the piecewise-linear acts the gap is measured on z, whose rounding decides the order:
    measured on leaky_relu's output, 0.01 z below 0, it flagged 86-99% of inputs, and the
    test then ran on one with a tie in about 1 case of 5000 (a swap failed it in one run).
    Thresholds: 1e-6 of 1 + |z| (float32 z), 1e-14 (float64: ~45 eps)."""
    if k < 2:
        return False
    z = _z(x, w, b, rm, rv, training).requires_grad_()
    act_z = apply_reference(z, act, 0.01)
    (slope,) = torch.autograd.grad(act_z.sum(), z)
    a = F.pad(act_z.detach(), (p, p), value=float("-inf")).unfold(2, k, s)
    top, at = a.topk(2, dim=-1)
    gap = top[..., 0] - top[..., 1]
    zw = F.pad(z.detach(), (p, p)).unfold(2, k, s).gather(-1, at)
    if act in ("identity", "relu", "leaky_relu"):  # monotonic: compare the z behind them
        gap = torch.where(gap > 0, (zw[..., 0] - zw[..., 1]).abs(), gap)
    # Relative to z: gelu's and silu's values near 0 far below it (gelu(-8) ~ 1e-15) carry
    # an absolute error of a few eps |z|, not of their own size. Such a pair swapping moves
    # no gradient worth the name (gelu'(-8) ~ 1e-14): only pairs with a slope count.
    moves = F.pad(slope.abs(), (p, p)).unfold(2, k, s).gather(-1, at).amax(-1) > 1e-9
    rel = 1e-14 if x.dtype == torch.float64 else 1e-6
    return bool(((gap > 0) & (gap < rel * (1 + zw[..., 0].abs())) & moves).any())


def _near_kink(x, w, b, rm, rv, training, act) -> bool:
    """Whether some z (float64) lies within float32 z's rounding of relu's / leaky_relu's
    kink: its act' may then differ between the two sides (1 vs 0), which moves grad_weight
    by g xhat (seen once in 24000 float32 calls). Rounding is relative to the size of z's
    two terms, (x - mean) invstd w and b."""
    if act not in ("relu", "leaky_relu"):
        return False
    z, bd = _z(x, w, b, rm, rv, training), b.double()[:, None]
    rel = 1e-14 if x.dtype == torch.float64 else 1e-6
    return bool((z.abs() < rel * (1 + (z - bd).abs() + bd.abs())).any())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("window", WINDOWS, ids=str)
@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_matches_reference(act, training, pool, window, dtype, device):
    k, s, p = window
    w, b, rm, rv = _params(5, dtype, device)
    # A max window routes its gradient to its largest act(z). z from float32 statistics
    # differs from the float64 reference's in the last bits, so two elements that the
    # activation maps to nearly equal values can swap: non-monotonic acts (gelu, silu) and
    # saturating ones (sigmoid, tanh round to 1 for large z) in float32; in half types
    # rounding ties them outright (see test_act_pool.py). Max-pool gradients are compared
    # where the order is robust: float64, and the piecewise-linear acts.
    robust = {torch.float64: ACTIVATIONS, torch.float32: ("identity", "relu", "leaky_relu")}
    grads = act not in FORWARD_ONLY and (pool == "avg" or act in robust.get(dtype, ("identity", "relu")))
    for _ in range(50):  # fresh inputs without near-ties or near-kinks (see _near_tie, _near_kink)
        x = signal((6, 5, 37), dtype, device)  # 37: windows leave a tail at every stride
        if not grads or not (_near_kink(x, w, b, rm, rv, training, act) or pool == "max" and
                             _near_tie(x, w, b, rm, rv, training, act, k, s, p)):
            break
    else:
        raise AssertionError("50 random inputs, all with near-ties or near-kinks")
    grad = signal((6, 5, (37 + 2 * p - k) // s + 1), dtype, device)
    got = _run(x, w, b, rm, rv, training, act, pool, k, s, p, grad, "native")
    ref = _run(x, w, b, rm, rv, training, act, pool, k, s, p, grad, "reference")
    _close(got[0], ref[0], dtype, "output")
    _close(got[4], ref[4], _stats_dtype(dtype), "running_mean")
    _close(got[5], ref[5], _stats_dtype(dtype), "running_var")
    if grads:
        _close(got[1], ref[1], dtype, "grad x")
        _close(got[2], ref[2], _stats_dtype(dtype), "grad weight")
        _close(got[3], ref[3], _stats_dtype(dtype), "grad bias")


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("act", ["identity", "leaky_relu", "gelu", "tanh"])
def test_gradcheck_float64(act, training, pool, affine):
    # Distinct values 1/7 apart (max windows never tie), jittered so that no element sits on
    # its channel's mean, which the norm would map onto leaky_relu's kink.
    x = (torch.randperm(3 * 4 * 10, dtype=torch.float64).view(3, 4, 10) - 60.0) / 7.0
    x = x + 0.01 * torch.rand_like(x)
    x.requires_grad_()
    w = (torch.rand(4, dtype=torch.float64) + 0.5).requires_grad_() if affine else None
    b = torch.randn(4, dtype=torch.float64).requires_grad_() if affine else None
    rm, rv = torch.randn(4, dtype=torch.float64), torch.rand(4, dtype=torch.float64) + 0.5
    inputs = (x, w, b) if affine else (x,)

    def f(x, w=None, b=None):
        return batch_norm_act_pool1d(x, None if training else rm, None if training else rv, w,
                                     b, training, 0.1, 1e-5, act, pool, 2)

    assert torch.autograd.gradcheck(f, inputs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_opcheck(training, device):
    x = signal((4, 3, 20), device=device).requires_grad_()
    w, b, rm, rv = _params(3, torch.float32, device)
    w.requires_grad_()
    b.requires_grad_()
    op = torch.ops.lightdl.bn_act_pool1d.default
    torch.library.opcheck(op, (x, w, b, rm, rv, training, 1e-5, "gelu", "max", 2, 2, 0, 0.01))
    torch.library.opcheck(op, (x, None, None, rm, rv, training, 1e-5, "relu", "avg", 3, 2, 1, 0.01))
    y, mean, var = op(x.detach(), w.detach(), b.detach(), rm, rv, training, 1e-5, "silu", "max",
                      2, 2, 0, 0.01)
    g = signal(tuple(y.shape), device=device)
    torch.library.opcheck(torch.ops.lightdl.bn_act_pool1d_backward.default,
                          (g, x.detach(), w.detach(), b.detach(), mean, var, training, 1e-5, "silu",
                           "max", 2, 2, 0, 0.01, [True, True, True]))


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_input_and_mixed_dtypes(device):
    x = signal((6, 40, 8), device=device).transpose(1, 2)[:, ::2]  # (6, 4, 40), strided
    assert not x.is_contiguous()
    w, b, rm, rv = _params(4, torch.float32, device)
    grad = signal((6, 4, 20), device=device)
    got = _run(x, w, b, rm, rv, True, "leaky_relu", "max", 2, 2, 0, grad, "native")
    ref = _run(x, w, b, rm, rv, True, "leaky_relu", "max", 2, 2, 0, grad, "reference")
    for a, r, what in zip(got, ref, ("y", "gx", "gw", "gb", "rm", "rv"), strict=True):
        _close(a, r, torch.float32, what)
    # bfloat16 x with float32 parameters and statistics (a BatchNorm under CPU autocast).
    xb = x.to(torch.bfloat16)
    got = _run(xb, w, b, rm, rv, True, "relu", "avg", 2, 2, 0, grad.to(torch.bfloat16), "native")
    ref = _run(xb, w, b, rm, rv, True, "relu", "avg", 2, 2, 0, grad.to(torch.bfloat16),
               "reference")
    assert got[0].dtype == torch.bfloat16 and got[2].dtype == torch.float32
    _close(got[0], ref[0], torch.bfloat16, "y")
    _close(got[1], ref[1], torch.bfloat16, "gx")
    _close(got[4], ref[4], torch.float32, "rm")


def test_float32_statistics_of_many_elements():
    """A channel's sums over N * L = 512k elements (ECG-length rows; x with an offset, whose
    variance cancels) against float64: summed per lane in one float32 run, the output was
    8.8e-6 of its scale off here (at 256 x 8 x 2000: running variance 1.3e-5, grad_weight
    1e-5; torch's 1e-7..4e-7); in two levels (csrc/cpu/bn_kernels.h, Sum) at most 6.6e-7 in
    five runs. Average pooling: no near-ties of max windows in the gradient."""
    N, C, L = 128, 4, 4000
    x, g = signal((N, C, L)) + 3.0, signal((N, C, L // 2))
    w, b = torch.randn(C), torch.randn(C)
    rm, rv = torch.zeros(C), torch.ones(C)
    args = (True, "relu", "avg", 2, 2, 0, g)
    got = _run(x, w, b, rm, rv, *args, "native")
    want = _run(x.double(), w.double(), b.double(), rm.double(), rv.double(), *args[:-1],
                g.double(), "reference")
    for what, a, r in zip(("out", "grad_x", "grad_weight", "grad_bias", "running_mean",
                           "running_var"), got, want, strict=True):
        err = (a.double() - r).abs().max().item() / r.abs().max().item()
        assert err < 2.5e-6, f"{what}: {err:.3g} of its scale"


@pytest.mark.parametrize("device", DEVICES)
def test_empty(device):
    w, b, rm, rv = _params(4, torch.float32, device)
    x = torch.randn(0, 4, 10, device=device, requires_grad=True)
    y = batch_norm_act_pool1d(x, rm, rv, w, b, False, act="relu", pool="max")
    assert y.shape == (0, 4, 5)
    y.sum().backward()
    assert x.grad.shape == x.shape
    x0 = torch.randn(3, 0, 10, device=device, requires_grad=True)
    empty = torch.empty(0, device=device)
    y0 = batch_norm_act_pool1d(x0, empty, empty.clone(), empty.clone(), empty.clone(), True)
    assert y0.shape == (3, 0, 5)


def test_bad_inputs_name_the_argument():
    x = torch.randn(2, 3, 10)
    rm, rv = torch.zeros(3), torch.ones(3)
    with pytest.raises(ValueError, match=r"`weight` must have shape \(3,\)"):
        batch_norm_act_pool1d(x, rm, rv, torch.ones(4), None, True)
    with pytest.raises(ValueError, match=r"`running_var` must have shape \(3,\)"):
        batch_norm_act_pool1d(x, rm, torch.ones(2), None, None, True)
    with pytest.raises(ValueError, match=r"`x` must have shape \(N, C, L\)"):
        batch_norm_act_pool1d(x[0], rm, rv)
    with pytest.raises(ValueError, match="needed when training=False"):
        batch_norm_act_pool1d(x, None, None, training=False)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batch_norm_act_pool1d(torch.randn(1, 3, 1), None, None, training=True, kernel_size=1)
    with pytest.raises(ValueError, match="`eps` must be > 0"):
        batch_norm_act_pool1d(x, rm, rv, eps=0.0)
    with pytest.raises(ValueError, match="`pool` must be one of max, avg"):
        batch_norm_act_pool1d(x, rm, rv, pool="min")
    with pytest.raises(ValueError, match="act must be one of"):
        batch_norm_act_pool1d(x, rm, rv, act="swish")
    with pytest.raises(ValueError, match="input too short"):
        batch_norm_act_pool1d(x, rm, rv, kernel_size=11)


def test_direct_op_calls_are_checked_in_cpp():
    x = torch.randn(2, 3, 10)
    op = torch.ops.lightdl.bn_act_pool1d
    with pytest.raises(ValueError, match=r"`bias` must have shape \(3,\)"):
        op(x, None, torch.ones(5), None, None, True, 1e-5, "relu", "max", 2, 2, 0)
    with pytest.raises(ValueError, match="`running_mean` and `running_var` are needed"):
        op(x, None, None, None, None, False, 1e-5, "relu", "max", 2, 2, 0)
    with pytest.raises(ValueError, match="`eps` must be > 0"):
        op(x, None, None, None, None, True, -1.0, "relu", "max", 2, 2, 0)
    y, mean, var = op(x, None, None, None, None, True, 1e-5, "relu", "max", 2, 2, 0)
    with pytest.raises(ValueError, match=r"`grad` must have shape \(2, 3, 5\)"):
        torch.ops.lightdl.bn_act_pool1d_backward(torch.randn(2, 3, 4), x, None, None, mean, var,
                                                 True, 1e-5, "relu", "max", 2, 2, 0, 0.01,
                                                 [True, False, False])


def test_compile_fullgraph_matches_eager():
    w, b, rm, rv = _params(6, torch.float32, "cpu")
    w.requires_grad_()

    def f(x):
        return batch_norm_act_pool1d(x, None, None, w, b, True, act="gelu").sum(dim=2)

    x = signal((4, 6, 30)).requires_grad_()
    y = torch.compile(f, fullgraph=True)(x)
    y.sum().backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    y_eager = f(x)
    y_eager.sum().backward()
    torch.testing.assert_close(y, y_eager)
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gw, w.grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("options", [{}, {"momentum": None}, {"affine": False},
                                     {"track_running_stats": False}], ids=str)
def test_module_matches_batchnorm_act_pool(options, device):
    fused = FusedBatchNorm1d(4, act="relu", pool="max", kernel_size=2, **options).to(device)
    bn = nn.BatchNorm1d(4, **options).to(device)
    plain = nn.Sequential(bn, nn.ReLU(), nn.MaxPool1d(2))
    if fused.affine:
        with torch.no_grad():
            fused.weight.uniform_(0.5, 1.5)
            fused.bias.normal_()
    plain[0].load_state_dict(fused.state_dict())
    for step in range(3):  # running statistics follow nn.BatchNorm1d's updates
        x = signal((5, 4, 33), device=device)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = fused(xa), plain(xb)
        torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-5)
        ya.square().sum().backward()
        yb.square().sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-4)
        for (name, a), (_, b) in zip(fused.state_dict().items(), bn.state_dict().items(),
                                             strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"{name} at step {step}")
    fused.eval()
    plain.eval()
    x = signal((3, 4, 20), device=device)
    torch.testing.assert_close(fused(x), plain(x), rtol=1e-5, atol=1e-5)


def test_module_state_dict_and_options():
    bn = nn.BatchNorm1d(3)
    fused = FusedBatchNorm1d(3, act="tanh")
    assert list(fused.state_dict()) == list(bn.state_dict())
    fused.load_state_dict(bn.state_dict())
    bn.load_state_dict(fused.state_dict())
    # Without pooling: (N, C) and (N, C, L) input, as nn.BatchNorm1d.
    x2 = signal((8, 3))
    torch.testing.assert_close(fused(x2), torch.tanh(bn(x2)), rtol=1e-5, atol=1e-6)
    x3 = signal((4, 3, 9))
    torch.testing.assert_close(fused(x3), torch.tanh(bn(x3)), rtol=1e-5, atol=1e-6)
    assert "act='tanh'" in repr(fused)
    with pytest.raises(ValueError, match="pooling needs"):
        FusedBatchNorm1d(3, pool="max")(x2)
    with pytest.raises(ValueError, match="`pool` must be 'max', 'avg' or None"):
        FusedBatchNorm1d(3, pool="sum")
    with pytest.raises(ValueError, match="act must be one of"):
        FusedBatchNorm1d(3, act="swish")

"""fused_conv1d and FusedConv1d: every path (direct kernels; the CPU GEMM path; vendor
convolution + epilogue) against the PyTorch reference."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lightdl
from lightdl.nn import FusedConv1d
from lightdl.ops import ACTIVATIONS, fused_conv1d, fused_conv1d_reference
from lightdl.ops._acts import apply_reference, grad_from_output
from lightdl.ops._backend import _C
from lightdl.ops.conv1d import (
    GEMM_MAX_LEN,
    SHORT_FORWARD_MIN_LEN,
    WIDE_DIRECT_MIN_LEN,
    conv1d_path,
    gemm_path_wanted,
    uses_direct_path,
)
from tests.helpers import DEVICES, signal

pytestmark = pytest.mark.skipif(_C is None, reason="compiled extension not built")

PATHS = ["auto", "direct", "gemm", "vendor"]
FORCED = ["direct", "gemm", "vendor"]
SMOOTH = ["identity", "sigmoid", "tanh", "gelu", "gelu_tanh", "silu"]  # no kink to round across
# Error per unit of the magnitude bound (the same sums over |terms|), by dtype. float16 allows
# for the vendor path, whose CPU float16 convolution rounds partial sums to float16 (ours
# accumulates in float32).
REL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 3e-2}


@pytest.fixture
def path(request, monkeypatch):
    """Force one of the op's paths through LIGHTDL_CONV1D_PATH (read on every call; "gemm"
    runs the vendor path where the GEMM path does not apply: CUDA, half types, groups > 1)."""
    if request.param != "auto":
        monkeypatch.setenv("LIGHTDL_CONV1D_PATH", request.param)
    else:
        monkeypatch.delenv("LIGHTDL_CONV1D_PATH", raising=False)
    return request.param


def random_case(rng: random.Random, groups_ok: bool = True) -> dict:
    """A random geometry in the issue's ranges: batch incl. 0 and 1, C_in 1..64, K 1..11,
    stride 1..3, dilation 1..3, padding 0..K, L from about the kernel span to 2000."""
    c_in = rng.choice([1, 1, 2, 3, 5, 8, 16, 24, 64])
    k = rng.randint(1, 11)
    d = rng.randint(1, 3)
    s = rng.randint(1, 3)
    p = rng.randint(0, k)
    span = d * (k - 1) + 1
    L = max(1, span - 2 * p) + rng.choice([0, 1, 7, rng.randint(0, 120)])
    if rng.random() < 0.15:
        L = rng.randint(1000, 2000)
    groups = 1
    c_out = rng.randint(1, 12)
    if groups_ok and rng.random() < 0.25 and c_in > 1:
        groups = rng.choice([g for g in (2, 4, c_in) if c_in % g == 0] or [1])
        c_out = groups * rng.randint(1, 3)
    n = rng.choice([0, 1, 2, 3, 4]) if L < 1000 else 2
    return dict(N=n, C=c_in, O=c_out, K=k, L=L, stride=s, padding=p, dilation=d, groups=groups)


def _grads(fn, x, w, b, g, **kw):
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    b = None if b is None else b.detach().requires_grad_()
    y = fn(x, w, b, **kw)
    gx, gw, gb = torch.autograd.grad(y, [t for t in (x, w, b) if t is not None], g,
                                     allow_unused=True, materialize_grads=True) + (None,) * (b is None)
    return y.detach(), gx, gw, gb


def _spread(x, w, gout, cfg):
    """The input and weight gradients (float64) of a convolution of |x| with |w| whose output
    gradient is gout (>= 0): how far per-output deviations gout can move grad_x and grad_w."""
    kw = {k: cfg[k] for k in ("stride", "padding", "dilation", "groups")}
    xa, wa = x.double().abs().requires_grad_(), w.double().abs().requires_grad_()
    z = F.conv1d(xa, wa, None, **kw)
    return torch.autograd.grad(z, (xa, wa), gout, materialize_grads=True)


def _bounds(x, w, b, g, cfg):
    """Elementwise magnitude bounds (float64): |pre-activation| terms, and the gradients of an
    identity convolution with every term made positive; act' is at most 1.13 (gelu)."""
    kw = {k: cfg[k] for k in ("stride", "padding", "dilation", "groups")}
    ba = None if b is None else b.double().abs()
    z = F.conv1d(x.double().abs(), w.double().abs(), ba, **kw)
    gx, gw = _spread(x, w, g.double().abs() * 1.13, cfg)
    return z, gx, gw


def _kink_spread(x, w, g, cfg, act, alpha, z, zb):
    """Extra tolerance of (out, grad_x, grad_w, grad_b) for relu/leaky_relu: a pre-activation
    within the kernel's rounding of the kink (n eps of its terms' magnitude for a sum of n
    terms) may land on either side of 0, and its act' then differs from the reference's by
    the jump, spread by the weights into grad_x and by the input into grad_w. Seen once in
    ~60 runs of the long-series case below (|z| 5e-8 of its terms' magnitude): 15 grad_x
    elements (C K) off by g w."""
    jump = {"relu": 1.0, "leaky_relu": abs(1 - alpha)}.get(act, 0.0)
    if not jump or g.numel() == 0:
        return (0, 0, 0, 0)
    n = cfg["C"] // cfg["groups"] * cfg["K"] + 1
    near = z.abs() <= n * torch.finfo(x.dtype).eps * zb
    gk = g.double().abs() * near * jump
    kx, kw_ = _spread(x, w, gk, cfg)
    return (0, kx, kw_, gk.sum((0, 2)))


def _check(cfg, act, dtype, device, alpha=0.2):
    x = signal((cfg["N"], cfg["C"], cfg["L"]), dtype, device)
    w = (torch.randn(cfg["O"], cfg["C"] // cfg["groups"], cfg["K"], dtype=torch.float64) /
         (cfg["C"] * cfg["K"]) ** 0.5).to(dtype=dtype, device=device)
    b = torch.randn(cfg["O"], dtype=dtype, device=device)
    kw = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
              groups=cfg["groups"], act=act, alpha=alpha)
    l_out = (cfg["L"] + 2 * cfg["padding"] - cfg["dilation"] * (cfg["K"] - 1) - 1) // cfg["stride"] + 1
    g = signal((cfg["N"], cfg["O"], l_out), dtype, device)
    got = _grads(fused_conv1d, x, w, b, g, **kw)
    want = _grads(fused_conv1d_reference, x.double(), w.double(), b.double(), g.double(), **kw)
    zb, gxb, gwb = _bounds(x, w, b, g, cfg)
    rel = REL[dtype]
    zmax = zb.max().item() if zb.numel() else 0.0
    # The gradients also carry the pre-activation's error through act'' (at most ~1).
    bounds = (1.13 * zb + 1, (1 + zmax) * gxb + 1e-30, (1 + zmax) * gwb + 1e-30,
              (1 + zmax) * g.double().abs().sum((0, 2)) + 1e-30)
    z = F.conv1d(x.double(), w.double(), b.double(), cfg["stride"], cfg["padding"],
                 cfg["dilation"], cfg["groups"])  # the exact pre-activation of these inputs
    kink = _kink_spread(x, w, g, cfg, act, alpha, z, zb)
    for name, a, r, bound, extra in zip(("out", "grad_x", "grad_w", "grad_b"), got, want, bounds,
                                        kink, strict=True):
        assert a.dtype == dtype and a.shape == r.shape, name
        err = (a.double() - r).abs()
        tol = rel * bound * 4 + extra
        if dtype in (torch.float16, torch.bfloat16):  # the result's own rounding
            tol = tol + r.abs() * rel + torch.finfo(dtype).smallest_normal
        if act in ("step", "sign") and name == "out":  # a pre-activation within rounding of 0
            err = torch.where(z.abs() > 1e3 * rel * zb, err, 0)
        if not (err <= tol).all():
            i = (err / tol).flatten().argmax()
            raise AssertionError(
                f"{name}: {(err > tol).sum().item()} of {err.numel()} elements over tolerance, "
                f"worst {a.flatten()[i].item()} vs {r.flatten()[i].item()} (tol "
                f"{tol.flatten()[i].item():.3g}); {dtype}, case {cfg}, act {act}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", PATHS, indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("case", range(5))
def test_matches_reference_random_shapes(case, dtype, path, device, _seed):
    rng = random.Random(_seed)
    for act in rng.sample(ACTIVATIONS, 4):
        _check(random_case(rng), act, dtype, device)


@pytest.mark.parametrize("path", ["direct"], indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_direct_many_output_channels(dtype, path, _seed):
    """From 64 output channels the AVX-512 build computes grad_weight in GEMM form (channels
    along the vector lanes, padded to 32; taps padded to 8): channel and tap counts off those
    multiples, short and long rows, batches of 1 and 3."""
    rng = random.Random(_seed)
    for o, c, k in ((64, 1, 1), (70, 3, 7), (131, 5, 3), (96, 16, 9)):
        s, d = rng.randint(1, 3), rng.randint(1, 2)
        L = rng.choice([d * (k - 1) + 1, 30, 300])
        _check(dict(N=rng.choice([1, 3]), C=c, O=o, K=k, L=L, stride=s, padding=rng.randint(0, k),
                    dilation=d, groups=1), rng.choice(ACTIVATIONS), dtype, "cpu")


@pytest.mark.parametrize("path", ["direct"], indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_direct_rows_of_one_vector(dtype, path, _seed):
    """Outputs of at most one vector (16 floats, 8 doubles in the AVX-512 build) run four
    one-vector tiles at once: rows shorter than, equal to and one past a vector; channel
    counts past the four tiles, inside them, and below one tile; strides and dilations."""
    rng = random.Random(_seed)
    for o in (3, 13, 16, 17, 36, 64):
        for l_out in (1, 7, 8, 9, 15, 16, 17):
            c, k, s, d = rng.randint(1, 40), rng.randint(1, 5), rng.randint(1, 2), rng.randint(1, 2)
            p = rng.randint(0, k)
            length = (l_out - 1) * s + d * (k - 1) + 1 - 2 * p
            if length < 1:
                p, length = 0, (l_out - 1) * s + d * (k - 1) + 1
            _check(dict(N=rng.choice([1, 3]), C=c, O=o, K=k, L=length, stride=s, padding=p,
                        dilation=d, groups=1), rng.choice(ACTIVATIONS), dtype, "cpu")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", PATHS, indirect=True)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_matches_reference_half_types(dtype, path, device, _seed):
    rng = random.Random(_seed)
    for act in rng.sample(SMOOTH, 3):
        _check(random_case(rng), act, dtype, device)


@pytest.mark.parametrize("path", PATHS, indirect=True)
def test_issue_shapes_scaled_down(path):
    """The benchmark geometries (batch and length cut down), every activation once."""
    shapes = [(2, 1, 100, 32, 7, 1, 3, 1), (2, 32, 50, 64, 5, 1, 2, 1), (2, 64, 25, 128, 3, 1, 1, 1),
              (2, 128, 16, 128, 3, 1, 2, 2), (2, 16, 102, 16, 9, 2, 4, 1)]
    for i, act in enumerate(ACTIVATIONS):
        n, c, L, o, k, s, p, d = shapes[i % len(shapes)]
        _check(dict(N=n, C=c, O=o, K=k, L=L, stride=s, padding=p, dilation=d, groups=1), act,
               torch.float32, "cpu")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", FORCED, indirect=True)
@pytest.mark.parametrize("act", ["identity", "gelu", "tanh", "leaky_relu"])
def test_gradcheck(act, path, device):
    configs = [(1, 1, 1), (2, 2, 2)]
    for _ in range(100):
        x = signal((2, 3, 13), torch.float64, device).requires_grad_()
        w = torch.randn(4, 3, 3, dtype=torch.float64, device=device, requires_grad=True)
        b = torch.randn(4, dtype=torch.float64, device=device, requires_grad=True)
        # leaky_relu has a kink at 0: a pre-activation within gradcheck's step of it makes the
        # finite difference straddle the kink (a failure of the check, not of the op).
        pre = [F.conv1d(x, w, b, s, p, d) for s, p, d in configs] + [F.conv1d(x, w, None, 3)]
        if act != "leaky_relu" or min(t.abs().min().item() for t in pre) > 1e-4:
            break
    for s, p, d in configs:
        assert torch.autograd.gradcheck(
            lambda x, w, b, s=s, p=p, d=d: fused_conv1d(x, w, b, s, p, d, 1, act, 0.1), (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w: fused_conv1d(x, w, None, 3, 0, 1, 1, act), (x, w))


@pytest.mark.parametrize("path", FORCED, indirect=True)
@pytest.mark.parametrize("act", ["identity", "relu", "sigmoid"])
def test_opcheck(act, path):
    x = torch.randn(2, 3, 11, requires_grad=True)
    w = torch.randn(5, 3, 3, requires_grad=True)
    b = torch.randn(5, requires_grad=True)
    op = torch.ops.lightdl.fused_conv1d.default
    torch.library.opcheck(op, (x, w, b, 2, 1, 1, 1, act, 0.01))
    torch.library.opcheck(op, (x, w, None, 1, 0, 2, 1, act, 0.01))
    saved = op(x, w, b, 1, 1, 1, 1, act, 0.01)[1].detach()
    if grad_from_output(act, x.dtype):
        saved = op(x, w, b, 1, 1, 1, 1, act, 0.01)[0].detach()
    g = torch.randn(2, 5, 11)
    torch.library.opcheck(torch.ops.lightdl.fused_conv1d_backward.default,
                          (g, x.detach(), w.detach(), b.detach(), saved, 1, 1, 1, 1, act, 0.01,
                           [True, True, True]))


def test_grouped_opcheck():
    x = torch.randn(2, 4, 9, requires_grad=True)
    w = torch.randn(8, 1, 3, requires_grad=True)
    torch.library.opcheck(torch.ops.lightdl.fused_conv1d.default,
                          (x, w, None, 1, 1, 1, 4, "gelu", 0.01))


@pytest.mark.parametrize("path", FORCED, indirect=True)
def test_non_contiguous_unbatched_and_empty(path):
    x = signal((20, 3, 4)).permute(2, 1, 0)  # (4, 3, 20), non-contiguous
    assert not x.is_contiguous()
    w = torch.randn(3, 5, 6).transpose(0, 1)[:, :, :3]  # (5, 3, 3), non-contiguous
    b = torch.randn(5)
    want = fused_conv1d_reference(x, w, b, 1, 1, 1, 1, "gelu")
    torch.testing.assert_close(fused_conv1d(x, w, b, 1, 1, 1, 1, "gelu"), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused_conv1d(x[0], w, b, 1, 1, 1, 1, "gelu"), want[0], rtol=1e-5,
                               atol=1e-5)
    wg = w.detach().requires_grad_()
    bg = b.detach().requires_grad_()
    y = fused_conv1d(torch.randn(0, 3, 20, requires_grad=True), wg, bg, 2, 1, 1, 1, "relu")
    assert y.shape == (0, 5, 10)
    y.sum().backward()
    assert torch.equal(wg.grad, torch.zeros_like(wg)) and torch.equal(bg.grad, torch.zeros(5))


@pytest.mark.parametrize("K,dilation", [(4, 1), (3, 2), (6, 3), (1, 1)])
def test_same_and_valid_padding(K, dilation):
    x = signal((2, 3, 17)).requires_grad_()
    w = torch.randn(4, 3, K, requires_grad=True)
    for padding in ("same", "valid"):
        y = fused_conv1d(x, w, None, 1, padding, dilation, 1, "silu")
        ref = fused_conv1d_reference(x, w, None, 1, padding, dilation, 1, "silu")
        torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
        g = torch.randn_like(y)
        torch.testing.assert_close(torch.autograd.grad(y, (x, w), g),
                                   torch.autograd.grad(ref, (x, w), g), rtol=1e-4, atol=1e-4)


def test_bad_inputs():
    x = torch.randn(2, 3, 10)
    w = torch.randn(4, 3, 3)
    with pytest.raises(ValueError, match="input too short"):
        fused_conv1d(torch.randn(2, 3, 4), torch.randn(4, 3, 3), dilation=2)
    with pytest.raises(ValueError, match=r"`weight` has 2 input channels per group but `x` has 3"):
        fused_conv1d(x, torch.randn(4, 2, 3))
    with pytest.raises(ValueError, match=r"`weight` must have shape \(C_out, C_in / groups, K\)"):
        fused_conv1d(x, torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"`x` must have shape \(N, C_in, L\)"):
        fused_conv1d(torch.randn(2, 3, 4, 5), w)
    with pytest.raises(ValueError, match="`weight` is on meta but `x` is on cpu"):
        fused_conv1d(x, w.to("meta"))
    with pytest.raises(ValueError, match="`bias` is on meta but `x` is on cpu"):
        fused_conv1d(x, w, torch.randn(4, device="meta"))
    with pytest.raises(ValueError, match=r"`bias` must have shape \(4,\)"):
        fused_conv1d(x, w, torch.randn(3))
    with pytest.raises(TypeError, match="`weight` dtype torch.float64 differs"):
        fused_conv1d(x, w.double())
    with pytest.raises(ValueError, match="not supported for strided"):
        fused_conv1d(x, w, padding="same", stride=2)
    with pytest.raises(ValueError, match="`padding` must be an int, 'same' or 'valid'"):
        fused_conv1d(x, w, padding="full")
    with pytest.raises(ValueError, match="`stride` must be >= 1"):
        fused_conv1d(x, w, stride=0)
    with pytest.raises(ValueError, match=r"must be divisible by groups \(2\)"):
        fused_conv1d(x, torch.randn(4, 1, 3), groups=2)
    with pytest.raises(ValueError, match="act must be one of"):
        fused_conv1d(x, w, act="softmax")
    with pytest.raises(TypeError, match="`x` must be float32"):
        fused_conv1d(x.long(), w)
    # The C++ op checks the same for direct torch.ops calls.
    with pytest.raises(ValueError, match="input too short"):
        torch.ops.lightdl.fused_conv1d(torch.randn(2, 3, 2), w, None, 1, 0, 1, 1, "relu", 0.01)
    with pytest.raises(ValueError, match="input channels per group"):
        torch.ops.lightdl.fused_conv1d(x, torch.randn(4, 2, 3), None, 1, 0, 1, 1, "relu", 0.01)
    with pytest.raises(TypeError, match="`weight` dtype"):
        torch.ops.lightdl.fused_conv1d(x, w.double(), None, 1, 0, 1, 1, "relu", 0.01)


@pytest.mark.parametrize("path", FORCED, indirect=True)
def test_deterministic_across_thread_counts(path):
    x = signal((9, 2, 300)).requires_grad_()
    w = torch.randn(6, 2, 5, requires_grad=True)
    b = torch.randn(6, requires_grad=True)
    g = torch.randn(9, 6, 300)
    threads = torch.get_num_threads()
    results = []
    try:
        for t in (1, 2, 1):
            torch.set_num_threads(t)
            results.append(_grads(fused_conv1d, x, w, b, g, stride=1, padding=2, act="gelu"))
    finally:
        torch.set_num_threads(threads)
    for r in results[1:]:
        for a, e in zip(r, results[0], strict=True):
            if path == "direct":  # ours: bitwise, whatever the thread count
                assert torch.equal(a, e)
            else:  # MKL's / oneDNN's sums (2700 terms for grad_w) may be split by thread
                torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-5 * e.abs().max().item())


@pytest.mark.parametrize("path", ["direct"], indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_weight_gradient_ignores_the_next_channel(path, dtype):
    # The weight gradient's last, partial vector of a row reads past the row (into the next
    # channel); those lanes must be dropped, not multiplied by zero: NaN and inf at the start
    # of channel 1 must leave channel 0's gradients finite and exact.
    x = signal((3, 2, 37), dtype)
    x[:, 1, :20] = float("nan")
    x[:, 1, 20:24] = float("inf")
    w = signal((4, 2, 3), dtype).requires_grad_()
    b = signal((4,), dtype).requires_grad_()
    g = signal((3, 4, 35), dtype)
    gw, gb = torch.autograd.grad(fused_conv1d(x, w, b, padding=0), (w, b), g)
    w2, b2 = w.detach().requires_grad_(), b.detach().requires_grad_()
    want_w, want_b = torch.autograd.grad(F.conv1d(x, w2, b2), (w2, b2), g)
    assert torch.isfinite(gw[:, 0]).all()
    # Sums of 105 products in another order: bounded by a few eps times the sum of |terms|.
    x64, g64 = x[:, :1].double().abs(), g.double().abs()
    mag_w = torch.nn.grad.conv1d_weight(x64, (4, 1, 3), g64).to(dtype)
    eps = torch.finfo(dtype).eps
    assert ((gw[:, :1] - want_w[:, :1]).abs() <= 16 * eps * mag_w).all()
    assert ((gb - want_b).abs() <= 16 * eps * g64.sum((0, 2)).to(dtype)).all()


@pytest.mark.parametrize("path", ["direct"], indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_direct_backward_of_a_long_series_in_channel_groups(path, dtype, act):
    # The direct backward keeps gz rows of every output channel at once up to 4 MiB per
    # thread; beyond, it takes the output channels in groups (multiples of 4, a partial last
    # one) and adds grad_input up group by group. 66 channels x 20000 positions: 5.3 MB in
    # float32 (groups 52 + 14), 10.6 MB in float64 (24 + 24 + 18).
    cfg = dict(N=2, C=3, O=66, K=5, L=40000, stride=2, padding=2, dilation=1, groups=1)
    _check(cfg, act, dtype, "cpu")


@pytest.mark.parametrize("path", ["direct"], indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_weight_gradient_ignores_the_next_output_channel(path, dtype):
    # The same for the incoming gradient: with K = 1 the margin after each output channel's row
    # is shorter than a vector, so a row's partial last vector reaches into the next channel's
    # gradient; inf there must leave the channels before it finite and exact.
    x = signal((2, 3, 13), dtype)
    w = signal((5, 3, 1), dtype).requires_grad_()
    g = signal((2, 5, 13), dtype)
    g[:, 2:, :2] = float("inf")
    (gw,) = torch.autograd.grad(fused_conv1d(x, w, None), (w,), g)
    w2 = w.detach().requires_grad_()
    (want,) = torch.autograd.grad(F.conv1d(x, w2), (w2,), g)
    assert torch.isfinite(gw[:2]).all() and not torch.isfinite(gw[2:]).any()
    # Each entry sums 26 products of inputs up to ~50 (signal's large values) in another order
    # than oneDNN's: the difference is held to 8 eps of the sum of the products' magnitudes
    # (the default tolerances failed now and then, 9e-5 at entries of ~18 in float32).
    w3 = w.detach().requires_grad_()
    (mag,) = torch.autograd.grad(F.conv1d(x.abs(), w3), (w3,),
                                 torch.where(torch.isfinite(g), g, 0).abs())
    eps = torch.finfo(dtype).eps
    assert ((gw[:2] - want[:2]).abs() <= 8 * eps * mag[:2]).all()


@pytest.mark.parametrize("path", FORCED, indirect=True)
@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
def test_relu_epilogue_propagates_nan(path, act):
    # The direct forward applies relu / leaky_relu to whole vectors of a tile (csrc/cpu/
    # conv1d_kernels.h, act_vector): NaN must come out as NaN, as from torch.relu, in full tiles
    # and in a row's partial last tile alike.
    x = signal((2, 1, 70), torch.float32)
    x[0, 0, 5] = float("nan")
    x[1, 0, 66] = float("nan")
    w = signal((6, 1, 7), torch.float32)
    b = signal((6,), torch.float32)
    y = fused_conv1d(x, w, b, padding=3, act=act)
    ref = F.conv1d(x, w, b, padding=3)
    ref = F.relu(ref) if act == "relu" else F.leaky_relu(ref, 0.01)
    assert torch.equal(torch.isnan(y), torch.isnan(ref)) and torch.isnan(ref).sum() == 84
    torch.testing.assert_close(y, ref, equal_nan=True)


# C_in * K <= 8: the CPU forward's input-stationary tile (AVX-512), every output channel count
# modulo its 4-channel block, lengths off its 32/16-position block, strides and dilations.
SMALL_REDUCTION = [
    dict(N=3, C=1, O=5, K=7, L=77, stride=1, padding=3, dilation=1, groups=1),
    dict(N=2, C=2, O=9, K=4, L=40, stride=2, padding=1, dilation=2, groups=1),
    dict(N=2, C=8, O=3, K=1, L=33, stride=3, padding=0, dilation=1, groups=1),
    dict(N=1, C=1, O=32, K=8, L=1000, stride=1, padding=4, dilation=1, groups=1),
    dict(N=4, C=1, O=2, K=3, L=5, stride=1, padding=0, dilation=1, groups=1),
]


@pytest.mark.parametrize("path", ["direct"], indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("cfg", SMALL_REDUCTION, ids=lambda c: f"C{c['C']}K{c['K']}O{c['O']}L{c['L']}")
def test_small_reduction_tile(cfg, dtype, path):
    for act in ("identity", "relu", "gelu", "sigmoid"):
        _check(cfg, act, dtype, "cpu")


@pytest.mark.parametrize("path", ["direct"], indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("act,alpha", [("relu", 0.0), ("leaky_relu", 0.1), ("leaky_relu", 0.0),
                                       ("sigmoid", 0.0), ("tanh", 0.0)])
@pytest.mark.parametrize("shape", [(5, 1, 300, 6, 7), (3, 6, 90, 10, 3)], ids=str)
def test_direct_backward_from_output_matches_recompute(shape, act, alpha, dtype, path):
    """act' read from the saved output (what autograd passes) against the recomputed
    pre-activation (an empty `saved`): the same gradients, exactly for relu / leaky_relu."""
    n, c, length, o, k = shape
    x, w, b = signal((n, c, length), dtype), signal((o, c, k), dtype), signal((o,), dtype)
    out = torch.ops.lightdl.fused_conv1d(x, w, b, 1, k // 2, 1, 1, act, alpha)[0]
    g = signal(out.shape, dtype)
    bwd = torch.ops.lightdl.fused_conv1d_backward
    args = (1, k // 2, 1, 1, act, alpha, [True, True, True])
    from_out = bwd(g, x, w, b, out, *args)
    recomputed = bwd(g, x, w, b, x.new_empty(0), *args)
    if act in ("relu", "leaky_relu"):
        for a, e in zip(from_out, recomputed, strict=True):
            assert torch.equal(a, e)
        return
    # sigmoid' = y (1 - y), tanh' = 1 - y^2 from the rounded output: a few eps off act' itself
    # (absolute), so each gradient is within a few eps of its sum of |terms|.
    cfg = dict(stride=1, padding=k // 2, dilation=1, groups=1)
    _, gxb, gwb = _bounds(x, w, b, g, cfg)
    gbb = g.double().abs().sum((0, 2))
    eps = torch.finfo(dtype).eps
    for name, a, e, bound in zip(("x", "weight", "bias"), from_out, recomputed, (gxb, gwb, gbb),
                                 strict=True):
        assert ((a - e).double().abs() <= 16 * eps * bound + 1e-300).all(), name


@pytest.mark.parametrize("path", ["vendor"], indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("act,alpha", [("relu", 0.01), ("leaky_relu", 0.1), ("leaky_relu", 0.0),
                                       ("leaky_relu", -0.2)])
def test_vendor_path_applies_relu_in_place(act, alpha, dtype, path):
    """The vendor path applies relu / leaky_relu (slope >= 0) in place on the convolution's
    output and saves no pre-activation (the backward reads act' from the output); a negative
    slope keeps the pre-activation."""
    x = signal((3, 20, 40), dtype).requires_grad_()
    w = signal((6, 20, 3), dtype).requires_grad_()
    b = signal((6,), dtype).requires_grad_()
    out, pre = torch.ops.lightdl.fused_conv1d(x, w, b, 1, 1, 1, 1, act, alpha)
    assert (pre.numel() == 0) == (alpha >= 0) == grad_from_output(act, dtype, alpha)
    leaves = [t.detach().requires_grad_() for t in (x, w, b)]
    want = apply_reference(F.conv1d(*leaves, padding=1), act, alpha)
    torch.testing.assert_close(out, want)
    g = signal(out.shape, dtype)
    got = torch.autograd.grad(fused_conv1d(x, w, b, padding=1, act=act, alpha=alpha), (x, w, b), g)
    wanted = torch.autograd.grad(want, leaves, g)
    tol = {} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 5e-2}
    for name, a, e in zip(("x", "weight", "bias"), got, wanted, strict=True):
        torch.testing.assert_close(a, e, msg=lambda m, name=name: f"grad {name}: {m}", **tol)


@pytest.mark.parametrize("path", FORCED, indirect=True)
@pytest.mark.parametrize("act", ["relu", "sigmoid", "gelu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_autograd_keeps_only_what_the_backward_reads(act, path, dtype):
    """Both backwards read act' from the output where they can (relu; sigmoid in float32):
    autograd keeps the output itself. Otherwise the direct backward recomputes the
    pre-activation and keeps nothing (gelu; bfloat16 sigmoid; bfloat16 relu, whose output
    the CPU kernel would first have to convert), and the vendor and GEMM backwards keep the
    pre-activation."""
    x = signal((2, 3, 30), dtype).requires_grad_()
    w = signal((4, 3, 5), dtype).requires_grad_()
    y = fused_conv1d(x, w, None, padding=2, act=act)
    kept = y.grad_fn.saved_tensors[3]
    from_output = grad_from_output(act, dtype) and (path != "direct" or dtype == torch.float32)
    if from_output:
        assert kept.data_ptr() == y.data_ptr()  # the output itself, no copy
    elif path == "direct":
        assert kept.numel() == 0
    else:
        assert kept.shape == y.shape and kept.data_ptr() != y.data_ptr()


def test_dispatch_rule():
    assert uses_direct_path(1, 7, 1)  # the one-channel signal case
    assert not uses_direct_path(64, 3, 1)  # oneDNN's direct convolution is at its GEMM rate
    assert uses_direct_path(8, 5, 1) and not uses_direct_path(16, 3, 1)  # the limit, C_in*K 42
    assert not uses_direct_path(1, 7, 2)  # groups > 1: vendor only
    # The compiled op agrees, at any length: its direct path saves no pre-activation.
    for c_in, k, length in ((4, 7, 60), (6, 7, 30), (8, 5, 1000), (16, 3, 60), (7, 7, 60)):
        x, w = signal((2, c_in, length)), signal((3, c_in, k))
        out, saved = torch.ops.lightdl.fused_conv1d(x, w, None, 1, 1, 1, 1, "gelu", 0.01)
        assert uses_direct_path(c_in, k, 1) == (c_in * k <= 42)
        assert (saved.numel() == 0) == uses_direct_path(c_in, k, 1, out.shape[2], "cpu", 3,
                                                        x.dtype)
    # Above the direct limit: the GEMM path for short CPU float32/float64 outputs, except
    # where MKL runs narrower kernels than oneDNN (AMD AVX-512 hosts: the vendor's then, with
    # our forward from SHORT_FORWARD_MIN_LEN positions where act' comes from the output).
    short = "gemm" if gemm_path_wanted() else "direct/vendor"
    shortest = "gemm" if gemm_path_wanted() else "vendor"
    assert conv1d_path(32, 5, 30) == conv1d_path(64, 3, GEMM_MAX_LEN) == short
    assert conv1d_path(32, 5, SHORT_FORWARD_MIN_LEN, act="relu") == short
    assert conv1d_path(64, 3, SHORT_FORWARD_MIN_LEN - 1) == shortest
    assert conv1d_path(64, 3, 15) == short  # af-c64: rows of one float32 vector
    assert conv1d_path(65, 3, 15) == conv1d_path(64, 3, 13) == shortest
    assert conv1d_path(32, 5, 30, act="gelu") == shortest
    assert conv1d_path(32, 5, GEMM_MAX_LEN + 1) == "vendor"
    assert conv1d_path(8, 5, 30) == "direct"
    assert conv1d_path(32, 5, 30, dtype=torch.bfloat16) == "vendor"
    assert conv1d_path(32, 5, 30, groups=2) == "vendor"
    # CUDA: no GEMM path; short outputs run direct up to C_in * K 192, cuDNN beyond.
    assert conv1d_path(32, 5, 30, device="cuda") == conv1d_path(64, 3, 64, device="cuda") \
        == "direct"
    assert conv1d_path(32, 5, 65, device="cuda") == "vendor"
    assert conv1d_path(128, 3, 30, device="cuda") == "vendor"  # C_in * K 384
    assert conv1d_path(64, 3, 30, groups=2, device="cuda") == "vendor"
    assert not uses_direct_path(32, 5, 1, device="cuda")  # no length given: the general rule
    # CPU float32/float64, longer outputs: small weights (C_out * C_in * K <= 5120) run direct.
    assert conv1d_path(16, 9, 512, c_out=16, act="gelu") == "direct"  # the issue's c16-s2
    assert conv1d_path(16, 5, 1000, c_out=64, dtype=torch.float64) == "direct"  # 5120
    # AMD AVX-512 hosts (not gemm_path_wanted()): outputs of 200+ with C_in <= 64 run direct at
    # any weight size.
    wide = not gemm_path_wanted()
    far = "direct" if wide else "vendor"
    assert conv1d_path(16, 5, 1000, c_out=65) == far
    assert conv1d_path(64, 3, 250, c_out=128) == far  # the issue's c64
    # There K <= 3 runs the direct forward, the vendor's backward, below that length.
    split = "direct/vendor" if wide else "vendor"
    assert conv1d_path(64, 3, WIDE_DIRECT_MIN_LEN - 1, c_out=128) == split
    assert conv1d_path(64, 5, WIDE_DIRECT_MIN_LEN - 1, c_out=128) == "vendor"
    assert conv1d_path(65, 3, 500, c_out=128) == "vendor"
    assert conv1d_path(128, 3, 128, c_out=128, act="relu") == split  # the issue's c128-dil2
    assert conv1d_path(128, 3, 128, c_out=128, act="gelu") == "vendor"
    assert conv1d_path(64, 3, 250, c_out=128, dtype=torch.bfloat16) == "vendor"
    assert conv1d_path(16, 9, 512, c_out=16, dtype=torch.bfloat16) == "direct/vendor"  # below
    assert conv1d_path(16, 9, 64, c_out=16) == short  # short outputs: the GEMM path first
    assert not uses_direct_path(16, 9, 1, 512, c_out=16)  # no dtype given: the general rule
    assert uses_direct_path(16, 9, 1, 512, c_out=16, dtype=torch.float32)
    # The compiled op agrees: its direct path saves no pre-activation.
    for c_in, k, c_out, length, direct in ((16, 9, 16, 200, True), (16, 5, 64, 200, True),
                                           (16, 5, 65, 200, False), (64, 3, 72, 202, wide),
                                           (64, 3, 72, 201, False), (65, 3, 72, 202, False)):
        x, w = signal((2, c_in, length)), signal((c_out, c_in, k))
        saved = torch.ops.lightdl.fused_conv1d(x, w, None, 1, 0, 1, 1, "gelu", 0.01)[1]
        assert (saved.numel() == 0) == direct, (c_in, k, c_out, length)
    # oneDNN's slow long-kernel forward above that: ours forward, the vendor's backward.
    assert conv1d_path(24, 9, 512, c_out=24, act="relu") == (
        "direct" if wide else "direct/vendor")  # 5184
    assert conv1d_path(24, 9, 512, c_out=24, act="gelu") == far  # needs the pre-activation
    assert conv1d_path(16, 9, 512, c_out=64, act="relu") == far
    assert conv1d_path(24, 7, 512, c_out=32, act="relu") == far
    assert conv1d_path(24, 9, 128, c_out=24, act="relu") == "direct/vendor"
    assert conv1d_path(16, 9, 512, c_out=16, act="relu", device="cuda") == "vendor"


@pytest.mark.cuda
def test_cuda_rule_matches_the_compiled_op(monkeypatch):
    """The CUDA op takes the path conv1d_path names: its direct path keeps no pre-activation
    for gelu (the vendor path does), and results match the reference either way."""
    monkeypatch.delenv("LIGHTDL_CONV1D_PATH", raising=False)
    for c_in, k, length in ((32, 5, 30), (64, 3, 64), (32, 5, 65), (128, 3, 30), (8, 5, 500)):
        x, w = signal((2, c_in, length), device="cuda"), signal((3, c_in, k), device="cuda")
        out, saved = torch.ops.lightdl.fused_conv1d(x, w, None, 1, 0, 1, 1, "gelu", 0.01)
        l_out = length - k + 1
        direct = conv1d_path(c_in, k, l_out, device="cuda") == "direct"
        assert (saved.numel() == 0) == direct, (c_in, k, length)
        ref = fused_conv1d_reference(x.double(), w.double(), act="gelu")
        torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4 * ref.abs().max())


@pytest.mark.parametrize("act", ["relu", "sigmoid", "gelu", "identity"])
def test_direct_forward_vendor_backward_matches_reference(act, monkeypatch):
    """K >= 9, C_out <= 32, weights above 5120 (CPU): the direct forward, then the vendor
    backward reading act' from the output; gelu keeps the vendor forward. Same results as the reference, and the
    forward bitwise the forced direct path's where the rule picks it."""
    monkeypatch.delenv("LIGHTDL_CONV1D_PATH", raising=False)
    cfg = dict(N=3, C=24, O=24, K=9, L=150, stride=2, padding=4, dilation=1, groups=1)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        _check(cfg, act, dtype, "cpu")
    x, w, b = signal((3, 24, 150)), signal((24, 24, 9)), signal((24,))
    auto = fused_conv1d(x, w, b, 2, 4, act=act)
    split = conv1d_path(24, 9, 75, c_out=24, act=act) == "direct/vendor"
    assert split == (act != "gelu")
    monkeypatch.setenv("LIGHTDL_CONV1D_PATH", "direct")
    direct = fused_conv1d(x, w, b, 2, 4, act=act)
    assert torch.equal(auto, direct) == split


@pytest.mark.parametrize("act", ["relu", "tanh", "gelu"])
def test_wide_direct_forward_vendor_backward(act, monkeypatch):
    """AMD AVX-512 hosts, float32, K <= 3, outputs 65-199 long above the direct limits: the
    direct forward and the vendor backward (act' from the output; gelu needs the
    pre-activation: the vendor path); elsewhere the vendor path. The forward is bitwise the
    forced path conv1d_path names, and the gradients match the reference's."""
    monkeypatch.delenv("LIGHTDL_CONV1D_PATH", raising=False)
    x, w, b = signal((3, 72, 100)), signal((80, 72, 3)) / 15, signal((80,))
    g = signal((3, 80, 100))
    path = conv1d_path(72, 3, 100, c_out=80, act=act)
    assert path == ("direct/vendor" if not gemm_path_wanted() and act != "gelu" else "vendor")
    y, gx, gw, gb = _grads(fused_conv1d, x, w, b, g, padding=1, act=act)
    ref = _grads(fused_conv1d_reference, x.double(), w.double(), b.double(), g.double(),
                 padding=1, act=act)
    for got, want in zip((y, gx, gw, gb), ref, strict=True):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4 * want.abs().max())
    monkeypatch.setenv("LIGHTDL_CONV1D_PATH", "direct" if path == "direct/vendor" else "vendor")
    assert torch.equal(y, fused_conv1d(x, w, b, 1, 1, act=act))


@pytest.mark.parametrize("length", [15, 20, 30, 100])
def test_rule_for_short_outputs_matches_the_op(length, monkeypatch):
    """The compiled rule agrees with conv1d_path: the unforced op's forward is bitwise the
    forced path that conv1d_path names for it, and so are its gradients (the paths the rule
    chooses between sum in other orders). Short outputs take the GEMM path, or on AMD
    AVX-512 hosts the vendor's, from SHORT_FORWARD_MIN_LEN positions with our forward."""
    x, w, b = signal((3, 32, length)), signal((40, 32, 5)), signal((40,))
    g = signal((3, 40, length))
    expected = conv1d_path(32, 5, length, c_out=40, act="relu")  # weights 6400: not direct
    if length > GEMM_MAX_LEN:
        assert expected == "vendor"
    elif gemm_path_wanted():
        assert expected == "gemm"
    else:
        assert expected == ("vendor" if length == 20 else "direct/vendor")
    fwd_path, bwd_path = expected.split("/") if "/" in expected else (expected, expected)
    monkeypatch.delenv("LIGHTDL_CONV1D_PATH", raising=False)
    auto = _grads(fused_conv1d, x, w, b, g, padding=2, act="relu")
    # The rule's alternatives only: the GEMM path's MKL kernel and the direct forward may
    # sum in the same order (bitwise equal at C_in * K 160 on an AMD Zen 5).
    for forced in ("gemm", "vendor") if expected == "gemm" else ("direct", "vendor"):
        monkeypatch.setenv("LIGHTDL_CONV1D_PATH", forced)
        got = _grads(fused_conv1d, x, w, b, g, padding=2, act="relu")
        assert torch.equal(got[0], auto[0]) == (forced == fwd_path), forced
        same = all(torch.equal(a, e) for a, e in zip(got[1:], auto[1:], strict=True))
        assert same == (forced == bwd_path), forced


@pytest.mark.parametrize("path", FORCED, indirect=True)
def test_compile_fullgraph(path):
    model = nn.Sequential(FusedConv1d(1, 8, 7, padding=3, act="relu"),
                          FusedConv1d(8, 8, 5, stride=2, padding="valid", act="gelu"))
    x = signal((3, 1, 50))
    compiled = torch.compile(model, fullgraph=True)
    y, ref = compiled(x), model(x)
    torch.testing.assert_close(y, ref)
    y.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    ref.sum().backward()
    for a, e in zip(grads, [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(a, e)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("conf", [dict(kernel_size=7, padding=3), dict(kernel_size=4, padding="same"),
                                  dict(kernel_size=3, stride=2, padding=1, dilation=2),
                                  dict(kernel_size=3, padding=1, groups=4)], ids=str)
def test_state_dict_interchange_with_nn_conv1d(conf, padding_mode):
    torch.manual_seed(0)
    ref = nn.Conv1d(4, 8, padding_mode=padding_mode, **conf)
    torch.manual_seed(0)
    fused = FusedConv1d(4, 8, padding_mode=padding_mode, act="tanh", **conf)
    assert fused.state_dict().keys() == ref.state_dict().keys()
    for k, v in ref.state_dict().items():  # same initialisation
        assert torch.equal(fused.state_dict()[k], v)
    other = nn.Conv1d(4, 8, padding_mode=padding_mode, **conf)
    fused.load_state_dict(other.state_dict())
    x = signal((3, 4, 23))
    torch.testing.assert_close(fused(x), torch.tanh(other(x)), rtol=1e-5, atol=1e-5)
    back = nn.Conv1d(4, 8, padding_mode=padding_mode, **conf)
    back.load_state_dict(fused.state_dict())
    torch.testing.assert_close(back(x), other(x))
    assert "act='tanh'" in repr(fused)


def test_module_without_bias_and_reference_backend():
    ref = nn.Conv1d(1, 5, 9, bias=False, padding=4)
    fused = FusedConv1d(1, 5, 9, bias=False, padding=4, act="leaky_relu", alpha=0.3)
    fused.load_state_dict(ref.state_dict())
    x = signal((2, 1, 40))
    want = F.leaky_relu(ref(x), 0.3)
    torch.testing.assert_close(fused(x), want, rtol=1e-5, atol=1e-5)
    with lightdl.ops.use_backend("reference"):
        torch.testing.assert_close(fused(x), want, rtol=1e-5, atol=1e-5)
    assert "alpha=0.3" in repr(fused)


@pytest.mark.parametrize("path", ["direct", "vendor"], indirect=True)
def test_cpu_autocast_bf16(path):
    conv = nn.Conv1d(2, 6, 5, padding=2)
    fused = FusedConv1d(2, 6, 5, padding=2, act="gelu")
    fused.load_state_dict(conv.state_dict())
    x = torch.randn(3, 2, 30)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fused(x)
        ref = F.gelu(conv(x))
    assert y.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(y, ref, rtol=3e-2, atol=3e-2)
    y.float().sum().backward()
    assert fused.weight.grad.dtype == torch.float32 and fused.bias.grad.dtype == torch.float32

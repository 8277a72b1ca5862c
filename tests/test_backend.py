"""Fallback to the reference ops, the instruction-set builds, and `lightdl info`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lightdl.ops._backend import _C

_CHECK = """
import warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import lightdl, torch
msgs = [str(w.message) for w in caught if "lightdl" in str(w.message)]
assert len(msgs) == 1, msgs
print(msgs[0])
assert lightdl.ops.get_backend() == "reference"
x, b = torch.randn(8, 16), torch.randn(16)
y = lightdl.ops.bias_act(x, b, "gelu")
torch.testing.assert_close(y, torch.nn.functional.gelu(x + b))
try:
    lightdl.ops.use_backend("native")
except RuntimeError as e:
    print("refused:", e)
else:
    raise SystemExit("use_backend('native') should have been refused")
"""


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_fallback_when_extension_cannot_load():
    # sys.modules[...] = None makes `from lightdl import _C` raise ImportError, as a missing build does.
    r = _python("import sys; sys.modules['lightdl._C'] = None\n" + _CHECK)
    assert r.returncode == 0, r.stderr
    assert "compiled kernels unavailable" in r.stdout and "refused:" in r.stdout


def test_fallback_when_disabled_by_environment():
    r = _python(_CHECK, LIGHTDL_NO_EXT="1")
    assert r.returncode == 0, r.stderr
    assert "LIGHTDL_NO_EXT=1" in r.stdout


@pytest.mark.skipif(_C is None, reason="compiled extension not built")
@pytest.mark.parametrize("isa", ["default", "avx2"])
def test_every_instruction_set_build_is_correct(isa):
    """The SSE2 and AVX2 builds of the CPU loops (the test machine may pick AVX-512)."""
    code = f"""
import torch, lightdl
from lightdl.ops import ACTIVATIONS
assert lightdl.ops._backend._C.cpu_isa() in ("{isa}", "default"), lightdl.ops._backend._C.cpu_isa()
x = torch.randn(3, 8, 1000, dtype=torch.float64) * 3
b = torch.randn(8, dtype=torch.float64)
g = torch.randn_like(x)
for act in ACTIVATIONS:
    for dt, tol in ((torch.float32, 3e-6), (torch.float64, 1e-12)):
        xs, bs, gs = x.to(dt), b.to(dt), g.to(dt)
        y = lightdl.ops.bias_act(xs, bs, act)
        r = lightdl.ops.bias_act_reference(x, b, act).to(dt)
        assert torch.allclose(y, r, rtol=tol, atol=tol * x.abs().max()), (act, dt)
        gx, gb = torch.ops.lightdl.bias_act_backward(gs, xs, bs, act, 0.01)
        xr = x.clone().requires_grad_()
        lightdl.ops.bias_act_reference(xr, b, act).backward(g) if act not in ("step", "sign") else None
        want = xr.grad if xr.grad is not None else torch.zeros_like(x)
        assert torch.allclose(gx.double(), want, rtol=tol, atol=tol * g.abs().max()), (act, dt)
print("ok")
"""
    r = _python(code, LIGHTDL_CPU_ISA=isa)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_lightdl_info_command():
    r = subprocess.run([sys.executable, "-m", "lightdl.cli", "info"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("lightdl ")
    assert "torch " in out and "backend: " in out and "cpu: " in out and "cuda: " in out
    if _C is None:
        assert "reference ops" in out
    else:
        assert "cpu: native kernels" in out


def test_cli_rejects_unknown_command():
    r = subprocess.run([sys.executable, "-m", "lightdl.cli", "frobnicate"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr


_CONV_LSTM_CHECK = """
import torch, lightdl
import torch.nn.functional as F
from lightdl.nn import FusedLSTM
assert lightdl.ops._backend._C.cpu_isa() in ("{isa}", "default"), lightdl.ops._backend._C.cpu_isa()
# Direct conv1d kernels (LIGHTDL_CONV1D_PATH=direct): full and partial tiles, strides, dilation.
for n, c, l, o, k, s, p, d in ((3, 1, 1000, 32, 7, 1, 3, 1), (2, 5, 77, 6, 3, 2, 1, 1),
                                (2, 16, 203, 18, 9, 2, 4, 1), (1, 3, 50, 5, 3, 1, 2, 2)):
    x = torch.randn(n, c, l, dtype=torch.float64, requires_grad=True)
    w = torch.randn(o, c, k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(o, dtype=torch.float64, requires_grad=True)
    g = torch.randn(n, o, (l + 2 * p - d * (k - 1) - 1) // s + 1, dtype=torch.float64)
    ref = F.relu(F.conv1d(x, w, b, s, p, d))
    want = torch.autograd.grad(ref, (x, w, b), g)
    for dt, tol in ((torch.float32, 1e-4), (torch.float64, 1e-10)):
        xs, ws, bs = (t.detach().to(dt).requires_grad_() for t in (x, w, b))
        y = lightdl.ops.fused_conv1d(xs, ws, bs, s, p, d, 1, "relu", 0.01)
        got = torch.autograd.grad(y, (xs, ws, bs), g.to(dt))
        scale = ref.abs().max().item()
        assert torch.allclose(y.double(), ref, rtol=tol, atol=tol * scale), ("conv1d", c, dt)
        for gg, ww in zip(got, want):
            assert torch.allclose(gg.double(), ww, rtol=tol, atol=tol * ww.abs().max().item()), (
                "conv1d grad", c, dt)
# The LSTM time loop: hidden sizes with and without a partial vector of units.
for hidden in (8, 20, 35):
    ref = torch.nn.LSTM(3, hidden)
    fused = FusedLSTM(3, hidden)
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(7, 5, 3)
    y, _ = fused(x)
    y_ref, _ = ref(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    y.sum().backward()
    y_ref.sum().backward()
    torch.testing.assert_close(fused.weight_hh_l0.grad, ref.weight_hh_l0.grad, rtol=1e-4, atol=1e-4)
# Batch-norm sums: row lengths that use every accumulator width and the scalar tail.
for length in (1, 3, 7, 13, 60, 61, 250):
    x = torch.randn(4, 5, length, dtype=torch.float64) * 2 + 1
    w, b = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    g = torch.randn(4, 5, length, dtype=torch.float64)
    k = 1 if length < 2 else 2
    for dt, tol in ((torch.float32, 1e-4), (torch.float64, 1e-10)):
        ins = [t.to(dt).requires_grad_() for t in (x, w, b)]
        refs = [t.detach().double().requires_grad_() for t in ins]
        y = lightdl.ops.batch_norm_act_pool1d(ins[0], None, None, ins[1], ins[2], True,
                                              act="tanh", kernel_size=k)
        r = lightdl.ops.batch_norm_act_pool1d_reference(refs[0], None, None, refs[1], refs[2],
                                                        True, act="tanh", kernel_size=k)
        assert torch.allclose(y.double(), r, rtol=tol, atol=tol), ("bn", length, dt)
        # No gradient into max windows whose two values float32 cannot order (tanh
        # saturates: 1e-8 apart happens): there the gradient legitimately goes to either.
        z = torch.tanh(F.batch_norm(refs[0].detach(), None, None, refs[1].detach(),
                                    refs[2].detach(), True, 0.1, 1e-5))
        top = z[..., : r.shape[-1] * k].unflatten(2, (-1, k)).topk(k, dim=-1).values
        gap = top[..., 0] - top[..., -1]  # exact ties are fine: both sides take the first
        tied = (gap > 0) & (gap < 1e-6 * (1 + top[..., 0].abs()))
        gy = g[..., : r.shape[-1]].masked_fill(tied, 0)
        got = torch.autograd.grad(y, ins, gy.to(dt))
        want = torch.autograd.grad(r, refs, gy)
        for gg, ww in zip(got, want):
            assert torch.allclose(gg.double(), ww, rtol=tol, atol=tol * ww.abs().max().item()), (
                "bn grad", length, dt)
print("ok")
"""


@pytest.mark.skipif(_C is None, reason="compiled extension not built")
@pytest.mark.parametrize("isa", ["default", "avx2"])
def test_every_instruction_set_build_of_conv1d_and_lstm(isa):
    """The direct conv1d kernels, the LSTM step and the batch-norm sums in the SSE2 and AVX2
    builds: their vector widths follow the ISA (csrc/cpu/conv1d_kernels.h, rnn_rows_kernels.h,
    bn_kernels.h)."""
    r = _python(_CONV_LSTM_CHECK.replace("{isa}", isa), LIGHTDL_CPU_ISA=isa,
                LIGHTDL_CONV1D_PATH="direct")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"

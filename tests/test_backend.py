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

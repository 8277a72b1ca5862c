"""`lightdl bench ops --op conv1d`: fused_conv1d against act(F.conv1d(...)) and its
torch.compile, on the issue's signal-processing shapes (few input channels, short kernels)."""

from __future__ import annotations

from dataclasses import astuple

import torch
import torch.nn.functional as F

from lightdl.bench.conv1d import ISSUE_SHAPES, SHAPES
from lightdl.bench.spec import OpSpec, parse_dims, randn, seeded
from lightdl.ops import fused_conv1d
from lightdl.ops._acts import apply_reference

# The issue's five shapes, from the table benchmarks/bench_conv1d.py uses too:
# (N, C_in, L, C_out, K, stride, padding, dilation).
PRESETS = {
    ",".join(map(str, t)): t
    for t in (astuple(SHAPES[name]) for name in ISSUE_SHAPES)
}
SYNTAX = "N,C_in,L,C_out,K[,stride,padding,dilation] (e.g. 64,1,1000,32,7,1,3,1)"


def _parse(text: str) -> tuple:
    dims = parse_dims(text, (5, 8), SYNTAX, sep=",")
    return dims if len(dims) == 8 else (*dims, 1, dims[4] // 2, 1)


def _l_out(shape) -> int:
    n, c, length, co, k, s, p, d = shape
    return (length + 2 * p - d * (k - 1) - 1) // s + 1


def _make(shape, impl, mode, device, dtype, options):
    n, c, length, co, k, s, p, d = shape
    act = options.get("act", "relu")
    gen = seeded(options.get("seed", 0))
    x = randn((n, c, length), gen, device, dtype)
    w = randn((co, c, k), gen, device, dtype) / (c * k) ** 0.5
    b = randn(co, gen, device, dtype)

    def reference(x_, w_, b_):
        return apply_reference(F.conv1d(x_, w_, b_, s, p, d), act)

    if impl == "native":
        fn = lambda x_, w_, b_: fused_conv1d(x_, w_, b_, s, p, d, 1, act)  # noqa: E731
    elif impl == "eager":
        fn = reference
    elif impl == "compile":
        fn = torch.compile(reference, dynamic=False)
    else:
        raise NotImplementedError(f"no {impl} implementation of conv1d")
    if mode == "fwd":
        def run():
            with torch.no_grad():
                return (fn(x, w, b),)
        return run
    leaves = [t.clone().requires_grad_() for t in (x, w, b)]
    g = randn((n, co, _l_out(shape)), gen, device, dtype)

    def run():
        for t in leaves:
            t.grad = None
        fn(*leaves).backward(g)
        return tuple(t.grad for t in leaves)
    return run


def _work(shape, mode, dtype):
    n, c, length, co, k, s, p, d = shape
    flop = 2.0 * n * co * _l_out(shape) * c * k
    return (flop if mode == "fwd" else 3 * flop), 0.0


CONV1D = OpSpec(
    name="conv1d", shape_syntax=SYNTAX, presets=PRESETS, parse=_parse, make=_make, work=_work,
    bound="compute", impls=("native", "eager", "compile"),
    describe={"native": "lightdl.ops.fused_conv1d", "eager": "act(F.conv1d(...)) (oneDNN/cuDNN)",
              "compile": "torch.compile(act(F.conv1d(...)))"})

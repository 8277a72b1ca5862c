"""fused_conv1d benchmark cases: shape presets and implementation builders, shared by
benchmarks/bench_conv1d.py (and `lightdl bench ops` later).

Implementations: "direct", "gemm" (CPU) and "vendor" (our op with its path forced through
LIGHTDL_CONV1D_PATH; "native" is whichever the dispatch rule picks), "eager"
(F.conv1d + the activation, PyTorch's own ops) and "compile" (torch.compile of the reference).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lightdl.ops import fused_conv1d, fused_conv1d_reference
from lightdl.ops.conv1d import conv1d_path


@dataclass(frozen=True)
class Conv1dShape:
    """One conv1d benchmark case: input (N, C_in, L), C_out filters of width K, stride s,
    padding p, dilation d."""
    N: int
    C_in: int
    L: int
    C_out: int
    K: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1

    @property
    def L_out(self) -> int:
        return (self.L + 2 * self.padding - self.dilation * (self.K - 1) - 1) // self.stride + 1

    def flops(self, mode: str) -> int:
        """Multiply-adds x 2 of the convolution; forward+backward = 3x (grad_input, grad_weight)."""
        fwd = 2 * self.N * self.C_out * self.C_in * self.K * self.L_out
        return fwd if mode == "fwd" else 3 * fwd

    def label(self) -> str:
        return (f"{self.N}x{self.C_in}x{self.L}->{self.C_out} k{self.K} s{self.stride} "
                f"p{self.padding} d{self.dilation}")


# The issue's five shapes, two around the direct path's threshold (C_in * K = 28 and 40), and
# the second and third convolutions of configs/af_cnn.yaml (60-beat windows, halved by each
# pooling), where the GEMM path runs.
SHAPES: dict[str, Conv1dShape] = {
    "signal": Conv1dShape(64, 1, 1000, 32, 7, 1, 3, 1),
    "c32": Conv1dShape(64, 32, 500, 64, 5, 1, 2, 1),
    "c64": Conv1dShape(64, 64, 250, 128, 3, 1, 1, 1),
    "c128-dil2": Conv1dShape(32, 128, 128, 128, 3, 1, 2, 2),
    "c16-s2": Conv1dShape(64, 16, 1024, 16, 9, 2, 4, 1),
    "c4": Conv1dShape(64, 4, 1000, 32, 7, 1, 3, 1),
    "c8": Conv1dShape(64, 8, 500, 32, 5, 1, 2, 1),
    "af-c32": Conv1dShape(64, 32, 30, 64, 5, 1, 2, 1),
    "af-c64": Conv1dShape(64, 64, 15, 64, 3, 1, 1, 1),
}
ISSUE_SHAPES = ("signal", "c32", "c64", "c128-dil2", "c16-s2")
IMPLS = ("direct", "gemm", "vendor", "eager", "compile")
FORCED = ("direct", "gemm", "vendor")


def native_path(shape: Conv1dShape, device: str = "cpu", act: str = "relu") -> str:
    """The path the dispatch rule picks for this shape (groups = 1, float32); "direct/vendor"
    for the direct forward with the vendor's backward."""
    return conv1d_path(shape.C_in, shape.K, shape.L_out, 1, torch.float32, device,
                       shape.C_out, act)


class _forced_path:
    def __init__(self, path: str | None) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.old = os.environ.get("LIGHTDL_CONV1D_PATH")
        if self.path:
            os.environ["LIGHTDL_CONV1D_PATH"] = self.path

    def __exit__(self, *exc: object) -> None:
        if self.old is None:
            os.environ.pop("LIGHTDL_CONV1D_PATH", None)
        else:
            os.environ["LIGHTDL_CONV1D_PATH"] = self.old


def make_case(shape: Conv1dShape, impl: str, mode: str, act: str = "relu",
              device: str = "cpu", dtype: torch.dtype = torch.float32,
              compiled: Callable | None = None) -> Callable[[], object]:
    """A no-argument function running one implementation on fixed random inputs (seed 0, the
    same for every implementation); fwd returns the output, fwdbwd the three gradients."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape.N, shape.C_in, shape.L, generator=g).to(device, dtype)
    w = (torch.randn(shape.C_out, shape.C_in, shape.K, generator=g) /
         (shape.C_in * shape.K) ** 0.5).to(device, dtype)
    b = torch.randn(shape.C_out, generator=g).to(device, dtype)
    grad = torch.randn(shape.N, shape.C_out, shape.L_out, generator=g).to(device, dtype)
    args = (shape.stride, shape.padding, shape.dilation, 1, act)
    if impl in FORCED or impl == "native":
        path = impl if impl in FORCED else None  # native: the rule's choice

        def op(*t):
            with _forced_path(path):
                return fused_conv1d(*t, *args)
    elif impl == "eager":
        def op(*t):
            return fused_conv1d_reference(*t, *args)
    elif impl == "compile":
        assert compiled is not None
        def op(*t):
            return compiled(*t, *args)
    else:
        raise ValueError(f"unknown implementation {impl!r}")
    if mode == "fwd":
        def run():
            with torch.no_grad():
                return op(x, w, b)
        return run
    xg, wg, bg = (t.clone().requires_grad_() for t in (x, w, b))
    # The backward op also reads LIGHTDL_CONV1D_PATH: it runs under the forced path too, or
    # a "vendor" row would time the vendor forward with the rule's (direct) backward.
    forced = impl if impl in FORCED else None

    def run():
        xg.grad = wg.grad = bg.grad = None
        with _forced_path(forced):
            op(xg, wg, bg).backward(grad)
        return xg.grad, wg.grad, bg.grad
    return run

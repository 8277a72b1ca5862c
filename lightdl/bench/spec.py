"""What `lightdl bench ops` needs to know about an op: shape syntax, presets, how to build
each implementation, and how much work one call does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

# A built case: run() does one call (forward, or forward+backward) and returns the tensors
# that are compared with the reference implementation.
Runner = Callable[[], tuple[torch.Tensor, ...]]

IMPLS = ("native", "eager", "compile", "vendor")


@dataclass
class OpSpec:
    """One benchmarkable op.

    make(shape, impl, mode, device, dtype, options) -> Runner, every impl with the same
    inputs and weights (seeded). work(shape, mode, dtype) -> (flop, bytes): the minimum work
    of one call, the same for every implementation; `bound` says which one the op is limited
    by ("memory": GB/s against the copy bandwidth, "compute": GFLOP/s against the GEMM rate).
    """

    name: str
    shape_syntax: str
    presets: dict[str, tuple]
    parse: Callable[[str], tuple]
    make: Callable[..., Runner]
    work: Callable[[tuple, str, torch.dtype], tuple[float, float]]
    bound: str
    impls: tuple[str, ...]
    describe: dict[str, str] = field(default_factory=dict)  # impl -> what it runs
    reference: str = "eager"


def parse_dims(text: str, n: int | tuple[int, ...], what: str, sep: str = "x") -> tuple[int, ...]:
    """'64x1024' -> (64, 1024), with a clear error naming the expected syntax."""
    counts = (n,) if isinstance(n, int) else n
    parts = text.replace(",", sep).split(sep)
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) not in counts or any(d < 0 for d in dims):
        raise ValueError(f"--shape {text!r}: expected {what}")
    return dims


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(shape: tuple[int, ...], gen: torch.Generator, device: torch.device | str,
          dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(shape, generator=gen).to(device=device, dtype=dtype)

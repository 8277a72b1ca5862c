"""Test helpers: devices, dtype tolerances and the random input generator."""

from __future__ import annotations

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]

# Tolerances for comparing a kernel with the PyTorch reference in the same dtype. Half types
# differ by a rounding of the (float32) result; float32 by the error of our vectorised
# exp/erf/tanh (<= 4.3e-7 relative) plus a few roundings.
TOL = {
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    torch.float32: dict(rtol=2e-6, atol=2e-6),
    torch.float16: dict(rtol=2e-3, atol=2e-4),
    torch.bfloat16: dict(rtol=1.6e-2, atol=2e-3),
}


def signal(shape: tuple[int, ...], dtype: torch.dtype = torch.float32, device: str = "cpu",
           away_from_zero: float = 0.0) -> torch.Tensor:
    """Random test input mixing normal values, values near 0 and large magnitudes (never
    zeros). With away_from_zero > 0, |x| >= away_from_zero (for kinks in gradcheck)."""
    x = torch.randn(shape, dtype=torch.float64)
    if x.numel():
        scale = torch.empty(shape, dtype=torch.float64).uniform_(0, 1)
        # ~10% tiny (1e-4 scale), ~10% large (x20), the rest standard normal
        x = torch.where(scale < 0.1, x * 1e-4, torch.where(scale > 0.9, x * 20, x))
    if away_from_zero:
        x = torch.sign(x) * (x.abs() + away_from_zero)
    return x.to(dtype=dtype, device=device)

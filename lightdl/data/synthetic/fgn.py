"""Exact fractional Gaussian noise by circulant embedding (Davies & Harte, Biometrika 1987).

fGn with Hurst exponent ``H`` (0 < H < 1) has autocovariance
``g(k) = (|k+1|^2H - 2|k|^2H + |k-1|^2H) / 2``; embedding it in a circulant matrix of size
``2n`` whose eigenvalues are non-negative for every H in (0, 1) gives exact samples with two
FFTs.  DFA applied to fGn estimates alpha = H (Peng et al. 1995), which is how the stride
generator sets a group's DFA alpha.
"""

from __future__ import annotations

import numpy as np


def fgn(hurst: np.ndarray | float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sample fractional Gaussian noise, unit variance, zero mean.

    Args:
        hurst: Hurst exponent(s), scalar or shape ``(S,)``; each in (0, 1).
        n: series length.
        rng: NumPy random generator (the only source of randomness).

    Returns:
        float64 array ``(S, n)`` (``(1, n)`` for a scalar ``hurst``).
    """
    h = np.atleast_1d(np.asarray(hurst, dtype=np.float64))
    if np.any((h <= 0) | (h >= 1)):
        raise ValueError(f"Hurst exponents must lie in (0, 1), got {h.min():.3g}..{h.max():.3g}")
    k = np.arange(n + 1, dtype=np.float64)
    two_h = 2.0 * h[:, None]
    gamma = 0.5 * (np.abs(k + 1) ** two_h - 2 * k**two_h + np.abs(k - 1) ** two_h)
    row = np.concatenate([gamma, gamma[:, -2:0:-1]], axis=1)  # circulant first row, size 2n
    lam = np.fft.fft(row, axis=1).real
    lam = np.clip(lam, 0.0, None)  # tiny negative round-off only
    m = row.shape[1]
    w = rng.standard_normal((len(h), m)) + 1j * rng.standard_normal((len(h), m))
    z = np.fft.fft(np.sqrt(lam / m) * w, axis=1)
    return z.real[:, :n]

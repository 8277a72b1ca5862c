"""Normalisation of padded series ``(N, C, L)`` with lengths; statistics from train only."""

from __future__ import annotations

import warnings

import numpy as np

NORMALIZE_MODES = ("global", "per_series", "none")


def valid_mask(lengths: np.ndarray, max_len: int) -> np.ndarray:
    """``(N, 1, L)`` boolean mask of the unpadded time steps."""
    return (np.arange(max_len)[None, :] < np.asarray(lengths)[:, None])[:, None, :]


def fit_global(x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and SD ``(C,)`` over the valid values of the training series."""
    m = np.broadcast_to(valid_mask(lengths, x.shape[2]), x.shape)
    xs = np.where(m, x, np.nan).astype(np.float64)
    mean = np.nanmean(xs, axis=(0, 2))
    std = np.nanstd(xs, axis=(0, 2))
    return mean, np.where(std > 0, std, 1.0)


def apply_norm(
    x: np.ndarray,
    lengths: np.ndarray,
    mode: str,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> np.ndarray:
    """Return normalised float32 copy; padding stays zero; NaNs (missing values) become 0.

    ``mode``: ``"global"`` uses ``(x - mean) / std`` with train statistics ``(C,)``;
    ``"per_series"`` z-normalises every series and channel by its own valid values (the UCR
    convention; removes level and scale - e.g. the mean RR or stride time - from the input);
    ``"none"`` leaves values as they are (seconds for RR/stride series).
    """
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {mode!r}")
    m = np.broadcast_to(valid_mask(lengths, x.shape[2]), x.shape)
    out = x.astype(np.float64)
    if mode == "global":
        out = (out - mean[None, :, None]) / std[None, :, None]
    elif mode == "per_series":
        xs = np.where(m, out, np.nan)
        with warnings.catch_warnings():  # all-NaN rows (empty series) are fine here
            warnings.simplefilter("ignore", RuntimeWarning)
            mu = np.nanmean(xs, axis=2, keepdims=True)
            sd = np.nanstd(xs, axis=2, keepdims=True)
        sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
        out = (out - np.nan_to_num(mu)) / sd
    out = np.where(m, np.nan_to_num(out, nan=0.0), 0.0)
    return out.astype(np.float32)

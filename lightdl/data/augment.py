"""Augmentations for 1-D signals ``(C, L)``, applied to the training split only.

Selected by name in the data module's config (``augment: ["jitter", "scaling"]``), each
with one strength (``augment_strength: {jitter: 0.05}``); off by default.  Every transform
works on the valid part ``x[:, :length]`` of a zero-padded series and keeps the length.
The transforms follow Um et al., "Data augmentation of wearable sensor data" (ICMI 2017)
and Le Guennec et al., "Data augmentation for time series classification" (2016):

=========== ======================================================== ================
name         what it does                                             strength (default)
=========== ======================================================== ================
jitter       adds N(0, s^2) noise to every value                      s = 0.03
scaling      multiplies each channel by N(1, s^2)                     s = 0.1
shift        rolls the series by up to +-s*L steps (circular)         s = 0.1
crop         random window of (1-s)*L steps stretched back to L       s = 0.1
time_warp    smooth random speed changes (4 knots, N(1, s^2) speeds)  s = 0.2
=========== ======================================================== ================

Randomness comes from torch's global generator, which Lightning seeds per worker
(``seed_everything(..., workers=True)``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor, int], torch.Tensor]

DEFAULT_STRENGTH: dict[str, float] = {
    "jitter": 0.03,
    "scaling": 0.1,
    "shift": 0.1,
    "crop": 0.1,
    "time_warp": 0.2,
}
AUGMENTATIONS = tuple(DEFAULT_STRENGTH)


def _resample(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``x (C, L)`` at fractional positions ``pos (M,)``."""
    length = x.shape[1]
    pos = pos.clamp(0, length - 1)
    i0 = pos.floor().long().clamp(max=length - 2) if length > 1 else pos.long() * 0
    frac = (pos - i0).to(x.dtype)
    if length == 1:
        return x[:, i0]
    return x[:, i0] * (1 - frac) + x[:, i0 + 1] * frac


def jitter(x: torch.Tensor, s: float) -> torch.Tensor:
    """``x (C, L)`` plus N(0, s^2) noise in every value."""
    return x + s * torch.randn_like(x)


def scaling(x: torch.Tensor, s: float) -> torch.Tensor:
    """``x (C, L)`` with each channel multiplied by a draw of N(1, s^2)."""
    return x * (1 + s * torch.randn(x.shape[0], 1, dtype=x.dtype))


def shift(x: torch.Tensor, s: float) -> torch.Tensor:
    """``x (C, L)`` rolled circularly by up to +-s*L steps."""
    k = int(round(s * x.shape[1]))
    if k == 0:
        return x
    return torch.roll(x, int(torch.randint(-k, k + 1, ())), dims=1)


def crop(x: torch.Tensor, s: float) -> torch.Tensor:
    """A random window of (1 - s) L steps of ``x (C, L)``, stretched back to L steps."""
    length = x.shape[1]
    keep = max(2, int(round((1 - s) * length)))
    if keep >= length:
        return x
    start = int(torch.randint(0, length - keep + 1, ()))
    return _resample(x[:, start : start + keep], torch.linspace(0, keep - 1, length))


def time_warp(x: torch.Tensor, s: float, knots: int = 4) -> torch.Tensor:
    """``x (C, L)`` resampled at a smoothly varying speed: `knots` + 2 speeds drawn
    from N(1, s^2), interpolated over the series."""
    length = x.shape[1]
    if length < 3:
        return x
    speed = (1 + s * torch.randn(knots + 2)).clamp(min=0.1)
    speed = F.interpolate(speed[None, None], size=length, mode="linear", align_corners=True)[0, 0]
    t = torch.cumsum(speed, 0)
    t = (t - t[0]) / (t[-1] - t[0]) * (length - 1)
    return _resample(x, t)


_FUNCS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "jitter": jitter,
    "scaling": scaling,
    "shift": shift,
    "crop": crop,
    "time_warp": time_warp,
}


def check_augment(
    names: Sequence[str] | None, strength: Mapping[str, float] | None = None
) -> list[str]:
    """Validate a config's augmentation names / strengths; returns the list of names."""
    names = [names] if isinstance(names, str) else list(names or [])
    unknown = [n for n in list(names) + list(strength or {}) if n not in _FUNCS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; choose from {list(AUGMENTATIONS)}")
    return names


def build_augment(
    names: Sequence[str] | None, strength: Mapping[str, float] | None = None
) -> Transform | None:
    """Compose the named transforms, in the given order; None when ``names`` is empty.

    The returned callable takes ``(x (C, L_pad) float tensor, length int)`` and returns a new
    tensor of the same shape whose padding (``x[:, length:]``) stays zero.
    """
    names = check_augment(names, strength)
    if not names:
        return None
    params = {**DEFAULT_STRENGTH, **dict(strength or {})}
    steps = [(_FUNCS[n], float(params[n])) for n in names]

    def apply(x: torch.Tensor, length: int) -> torch.Tensor:
        out = x.clone()
        valid = out[:, :length]
        for fn, s in steps:
            valid = fn(valid, s)
        out[:, :length] = valid
        return out

    return apply

"""Argument checks of the public ops, shared by both backends, so a wrong call fails the same
way, with a message naming the argument, whichever backend runs."""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def check_tensor(t: object, name: str, op: str, min_dim: int = 0) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: `{name}` must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{op}: `{name}` must be float32, float64, float16 or bfloat16, got {t.dtype}"
        )
    if t.dim() < min_dim:
        raise ValueError(
            f"{op}: `{name}` must have at least {min_dim} dims, got shape {tuple(t.shape)}"
        )
    return t


def autocast_active(t: torch.Tensor) -> bool:
    return t.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(t.device.type)


def check_like(t: torch.Tensor, ref: torch.Tensor, name: str, ref_name: str, op: str) -> None:
    """`t` must share `ref`'s device, and its dtype unless autocast will cast both."""
    if t.device != ref.device:
        raise ValueError(f"{op}: `{name}` is on {t.device} but `{ref_name}` is on {ref.device}")
    if t.dtype != ref.dtype and not autocast_active(ref):
        raise TypeError(f"{op}: `{name}` dtype {t.dtype} differs from `{ref_name}` dtype {ref.dtype}")


def check_float(value: object, name: str, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: `{name}` must be a number, got {type(value).__name__}")
    return float(value)


def check_int(value: object, name: str, op: str, minimum: int) -> int:
    """An int >= minimum; a 1-tuple is unpacked (nn.Conv1d and nn pooling layers store them)."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: `{name}` must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{op}: `{name}` must be >= {minimum}, got {value}")
    return value

"""The `input_shape` convention shared by all models (and linked from the data modules)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def as_shape(input_shape: int | Sequence[int | None], name: str) -> tuple:
    """An int means (features,) or (channels,); a sequence is one sample's shape."""
    if isinstance(input_shape, int):
        shape: tuple = (input_shape,)
    else:
        shape = tuple(input_shape)
    if not shape or not all(s is None or (isinstance(s, int) and s > 0) for s in shape):
        raise ValueError(f"{name}: input_shape must be a positive int or a tuple of them, "
                         f"got {input_shape!r}")
    return shape


def flat_features(shape: tuple, name: str) -> int:
    if any(s is None for s in shape):
        raise ValueError(f"{name}: needs a fixed input size, but input_shape={shape} has a "
                         "variable length; use fixed windows or a CNN1d/RNNClassifier")
    return math.prod(shape)

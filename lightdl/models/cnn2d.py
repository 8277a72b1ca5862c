"""LeNet-style 2-D CNN for small images (8x8 digits, 28x28 MNIST-like)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lightdl.models._layers import LinearAct, activation
from lightdl.models._shape import as_shape
from lightdl.models.init import init_weights


class CNN2d(nn.Module):
    """conv -> act -> pool blocks, flatten, Linear -> act -> Dropout hidden layers, linear head.
    Input (B, C, H, W) -> logits (B, num_classes).

    Args:
        input_shape: (C, H, W).
        num_classes: output size.
        channels: output channels of each conv block; kernel_size: odd, "same" padding.
        hidden: sizes of the fully connected hidden layers.
        act: activation; pool: "max" or "avg" (2x2, skipped once the image is 1 pixel wide).
        norm: "batch" or "none"; dropout: before each fully connected layer.
        init, fused, alpha: as for MLP (the fused variant runs the fully connected layers
        and their activations on lightdl's kernels; the convolutions and the activations
        after them are torch's).
    """

    def __init__(self, input_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10,
                 channels: Sequence[int] = (16, 32), kernel_size: int = 3,
                 hidden: Sequence[int] = (64,), act: str = "relu", pool: str = "max",
                 norm: str = "none", dropout: float = 0.0, init: str = "default",
                 fused: bool = True, alpha: float = 0.01) -> None:
        super().__init__()
        shape = as_shape(input_shape, "CNN2d")
        if len(shape) != 3 or None in shape:
            raise ValueError(f"CNN2d: input_shape must be (C, H, W), got {input_shape!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"CNN2d: kernel_size must be odd, got {kernel_size}")
        if pool not in ("max", "avg") or norm not in ("batch", "none"):
            raise ValueError(f"CNN2d: pool must be max/avg and norm batch/none, got {pool!r}, {norm!r}")
        self.input_shape = shape
        self.num_classes = num_classes
        c, h, w = shape
        blocks = []
        for c_out in channels:
            layers: list[nn.Module] = [nn.Conv2d(c, c_out, kernel_size, padding=kernel_size // 2)]
            if norm == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(activation(act, alpha))
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
                h, w = h // 2, w // 2
            blocks.append(nn.Sequential(*layers))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        sizes = [c * h * w, *hidden]
        self.hidden = nn.ModuleList(
            LinearAct(a, b, act=act, fused=fused, alpha=alpha) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = LinearAct(sizes[-1], num_classes, act="identity", fused=fused)
        init_weights(self, init, act)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x).flatten(1)
        for layer in self.hidden:
            x = layer(self.dropout(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))

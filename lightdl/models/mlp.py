"""Multilayer perceptron: Linear -> activation -> Dropout blocks and a linear head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lightdl.models._layers import LinearAct
from lightdl.models._shape import as_shape, flat_features
from lightdl.models.init import init_weights


class MLP(nn.Module):
    """Input (B, *input_shape), flattened -> logits (B, num_classes).

    Args:
        input_shape: number of input features, or one sample's shape (flattened).
        num_classes: output size (logits; the loss applies softmax/sigmoid).
        hidden: sizes of the hidden layers.
        act: hidden activation (relu, leaky_relu, sigmoid, tanh, gelu, silu, ...).
        dropout: dropout probability after each hidden activation.
        init: default, xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal.
        fused: FusedLinear layers (bias and activation fused) or nn.Linear + activation.
        alpha: leaky_relu slope.
    """

    def __init__(self, input_shape: int | Sequence[int] = 64, num_classes: int = 10,
                 hidden: Sequence[int] = (128, 64), act: str = "relu", dropout: float = 0.0,
                 init: str = "default", fused: bool = True, alpha: float = 0.01) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLP: dropout must be in [0, 1), got {dropout}")
        self.input_shape = as_shape(input_shape, "MLP")
        self.num_classes = num_classes
        in_features = flat_features(self.input_shape, "MLP")
        sizes = [in_features, *hidden]
        self.hidden = nn.ModuleList(
            LinearAct(a, b, act=act, fused=fused, alpha=alpha) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = LinearAct(sizes[-1], num_classes, act="identity", fused=fused)
        init_weights(self, init, act)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's output, (B, hidden[-1])."""
        x = x.flatten(1)
        for layer in self.hidden:
            x = self.dropout(layer(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

"""`Activation`: any lightdl activation as a module (a fused kernel on the native backend)."""

from __future__ import annotations

import torch
from torch import nn

from lightdl.ops import activation
from lightdl.ops._acts import check_act


class Activation(nn.Module):
    """Applies `act` elementwise. Input: any shape; output: the same shape.

    Args:
        act: identity, relu, leaky_relu, sigmoid, tanh, gelu, gelu_tanh, silu, step or sign.
        alpha: negative slope of leaky_relu.
    """

    def __init__(self, act: str = "relu", alpha: float = 0.01) -> None:
        super().__init__()
        self.act = check_act(act, "Activation")
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activation(x, self.act, self.alpha)

    def extra_repr(self) -> str:
        return f"act={self.act!r}" + (f", alpha={self.alpha}" if self.act == "leaky_relu" else "")

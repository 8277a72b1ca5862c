"""Rosenblatt's perceptron: a weighted sum plus bias through a step (or sign) function."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lightdl.models._layers import LinearAct
from lightdl.models._shape import as_shape, flat_features


class Perceptron(nn.Module):
    """`step(w . x + b)` (outputs 0/1) or `sign(w . x + b)` (outputs -1/+1).

    It learns with its own rule, `rosenblatt_step`, not by gradient descent (the step has no
    useful derivative). It separates AND and OR; XOR is not linearly separable, so no
    weights exist that classify all four XOR inputs (at most 3 of 4 are ever right).

    Args:
        input_shape: number of inputs (or one sample's shape, flattened).
        num_classes: must be 2 (a single perceptron is a binary classifier).
        act: "step" (targets 0/1) or "sign" (targets 0/1 are mapped to -1/+1).
        init: "zeros" (the textbook start) or "random" (small normal weights).
        fused: FusedLinear with the step in its epilogue, or nn.Linear then the step.
    Input (B, *input_shape) -> (B,) predictions in {0, 1} (step) or {-1, 1} (sign).
    """

    def __init__(self, input_shape: int | Sequence[int] = 2, num_classes: int = 2,
                 act: str = "step", init: str = "zeros", fused: bool = True) -> None:
        super().__init__()
        if num_classes != 2:
            raise ValueError(f"Perceptron: a single perceptron separates 2 classes, got "
                             f"num_classes={num_classes}; use an MLP")
        if act not in ("step", "sign"):
            raise ValueError(f"Perceptron: act must be 'step' or 'sign', got {act!r}")
        if init not in ("zeros", "random"):
            raise ValueError(f"Perceptron: init must be 'zeros' or 'random', got {init!r}")
        self.input_shape = as_shape(input_shape, "Perceptron")
        self.num_classes = num_classes
        self.in_features = flat_features(self.input_shape, "Perceptron")
        self.act = act
        self.fused = fused
        self.neuron = LinearAct(self.in_features, 1, act=act, fused=fused)
        with torch.no_grad():
            if init == "zeros":
                self.neuron.linear.weight.zero_()
                self.neuron.linear.bias.zero_()
            else:
                self.neuron.linear.weight.normal_(0.0, 0.01)
                self.neuron.linear.bias.zero_()

    @property
    def weight(self) -> torch.Tensor:
        return self.neuron.linear.weight

    @property
    def bias(self) -> torch.Tensor:
        return self.neuron.linear.bias

    def net_input(self, x: torch.Tensor) -> torch.Tensor:
        """The weighted sum `w . x + b`, (B,)."""
        return (x.flatten(1) @ self.weight.t() + self.bias).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(x.flatten(1)).squeeze(-1)

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """Class labels 0/1 in the activation's range: 0/1 for step, -1/+1 for sign."""
        y = y.to(self.weight.dtype)
        return 2 * y - 1 if self.act == "sign" else y

    @torch.no_grad()
    def rosenblatt_step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> int:
        """One application of the perceptron rule over a batch, sample by sample (online, as
        Rosenblatt's algorithm is defined): `w <- w + lr (y - y_hat) x`, `b <- b + lr (y - y_hat)`.

        Args:
            x: (B, *input_shape); y: (B,) class labels 0/1.
        Returns:
            the number of samples that were misclassified when visited.
        """
        x = x.flatten(1).to(self.weight.dtype)
        t = self.targets(y)
        errors = 0
        for i in range(x.shape[0]):
            y_hat = self.forward(x[i : i + 1])[0]
            delta = t[i] - y_hat
            if delta != 0:
                errors += 1
                self.weight.add_(lr * delta * x[i].unsqueeze(0))
                self.bias.add_(lr * delta)
        return errors

    def predict_class(self, x: torch.Tensor) -> torch.Tensor:
        """Class labels 0/1, (B,) int64."""
        return (self.forward(x) > 0).long()
